/// An RGB colour.
public struct RGB: Sendable, Equatable, Hashable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    /// `self` over `background` at opacity `alpha` (0...1).
    func blended(over background: RGB, alpha: Double) -> RGB {
        func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((Double(a) * alpha + Double(b) * (1 - alpha)).rounded()) }
        return RGB(mix(r, background.r), mix(g, background.g), mix(b, background.b))
    }
}

/// A raster of RGB pixels drawn with rectangles, lines and `BitmapFont` text; anything outside is clipped.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var rgb: [UInt8]

    public init(width: Int, height: Int, background: RGB) {
        self.width = width
        self.height = height
        rgb = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, background)
    }

    public func pixel(x: Int, y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(rgb[i], rgb[i + 1], rgb[i + 2])
    }

    public mutating func set(x: Int, y: Int, _ colour: RGB, alpha: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let value = alpha >= 1 ? colour : colour.blended(over: pixel(x: x, y: y), alpha: alpha)
        let i = (y * width + x) * 3
        rgb[i] = value.r
        rgb[i + 1] = value.g
        rgb[i + 2] = value.b
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ colour: RGB, alpha: Double = 1) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for row in y0..<y1 {
            for column in x0..<x1 { set(x: column, y: row, colour, alpha: alpha) }
        }
    }

    /// A line `thickness` pixels wide (Bresenham, each point a square).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ colour: RGB, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        let offset = (thickness - 1) / 2
        while true {
            fill(x: x - offset, y: y - offset, width: thickness, height: thickness, colour)
            if x == x1 && y == y1 { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    /// `text` with its top-left corner at (x, y), each font pixel `scale × scale`.
    public mutating func text(_ text: String, x: Int, y: Int, _ colour: RGB, scale: Int = 1) {
        var left = x
        for character in text {
            let rows = BitmapFont.glyph(character)
            for (row, bits) in rows.enumerated() {
                for column in 0..<BitmapFont.width where bits & (1 << (BitmapFont.width - 1 - column)) != 0 {
                    fill(x: left + column * scale, y: y + row * scale, width: scale, height: scale, colour)
                }
            }
            left += BitmapFont.advance * scale
        }
    }

    /// How wide `text` is drawn at `scale`.
    public static func textWidth(_ text: String, scale: Int = 1) -> Int { text.count * BitmapFont.advance * scale }

    public func png() -> [UInt8] { PNGEncoder.encode(width: width, height: height, rgb: rgb) }
}
