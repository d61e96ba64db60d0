// Symlinked into every fuzz target. SwiftPM links an executable target with `main` aliased to
// `<Target>_main` (so tests can link executables); under -parse-as-library the compiler makes no
// such function, so each target's Entry.swift defines it and calls `runFuzzerDriver`, which runs
// libFuzzer's driver on this target's `fuzz`, exactly as libFuzzer's own main would.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

func runFuzzerDriver(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, { data, size in fuzz(data, size) })
}
