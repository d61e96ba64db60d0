// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "vwfcgi",
    products: [
        .executable(name: "vwfcgi", targets: ["VWFCGI"]),
        .library(name: "VWCore", targets: ["VWCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        // fork/exec with a parent-death signal and a new process group: not expressible with posix_spawn.
        .target(name: "CSpawn"),
        .target(
            name: "VWCore",
            dependencies: [
                "CSpawn",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "VWFCGI",
            dependencies: [
                "CFastCGI",
                "CSpawn",
                "VWCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the test targets share: temporary model folders and a stand-in vw.
        .target(name: "VWTestSupport", dependencies: ["VWCore"], path: "Tests/VWTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "VWCoreTests", dependencies: ["VWCore", "VWTestSupport"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(
            name: "VWFCGITests",
            dependencies: ["VWFCGI", "VWCore", "VWTestSupport", .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: swiftSettings
        ),
    ]
)
