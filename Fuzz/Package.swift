// swift-tools-version: 6.2
// libFuzzer targets for vwfcgi's parsers (issue 8). A separate package: a fuzz target has no
// main of its own (libFuzzer provides it under -sanitize=fuzzer), so it cannot be an ordinary
// executable of the main package. Sources are symlinks to the main package's files, so the
// code fuzzed is exactly the code shipped.
//
//   swift build -c debug --package-path Fuzz \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   Fuzz/.build/debug/FuzzJSON Fuzz/Corpus/FuzzJSON -max_total_time=60
//
// or `make fuzz` / `make fuzz-smoke` (mk/fuzz.mk).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "vwfcgi-fuzz",
    targets: [
        // Sources/VWCore/Protocol and JSON of the main package (validator, batch builder, text body,
        // prediction parser, JSON parser), PredictError and ExampleStrings: the part of VWCore with
        // no process or system dependency; and the join/restore path of the learning loop (Loop/
        // without Learner and LearningLoops, FileIO, SHA256, and what LoopConfig/EventLog need:
        // ModelConfig, VWOptions, LoadError, Deadline).
        .target(name: "VWCore", swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzBatch", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzGrammar", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzJSON", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzPredictionParser", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzFastCGIParams", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzFramer", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        // Sources/VWFCGI/OpenInference/InferRequest.swift: the V2 request decoder (a stream over JSONStream).
        .executableTarget(name: "FuzzV2", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzJoin", dependencies: ["VWCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzNative", dependencies: ["VWCore"], swiftSettings: swiftSettings),
    ]
)
