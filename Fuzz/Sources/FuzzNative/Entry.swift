// The executable's entry point under libFuzzer (see Fuzz/Shared/FuzzDriver.swift).
@_cdecl("FuzzNative_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzerDriver(argc, argv)
}
