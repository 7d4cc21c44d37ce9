// swift-tools-version:6.0
import PackageDescription

// Dependencies run one way: C modules <- ZMQ, Postgres <- ServiceRuntime <- services.
// `Wire` (the protocol's types) and `JSONSchema` import neither C nor I/O.
let swiftSettings: [SwiftSetting] = []

let package = Package(
    name: "tsunagu",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tsunagu-gateway", targets: ["GatewayMain"]),
        .executable(name: "tsunagu-registry", targets: ["Registry"]),
        .executable(name: "tsunagu-meetings", targets: ["Meetings"]),
        .executable(name: "tsunagu", targets: ["TsunaguCLI"]),
        .executable(name: "tsunagu-bench", targets: ["Bench"]),
        .library(name: "ServiceRuntime", targets: ["ServiceRuntime"]),
        .library(name: "TsunaguTesting", targets: ["TsunaguTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The meetings service encrypts case content before it reaches PostgreSQL (AES-GCM, HKDF).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        .systemLibrary(name: "CLibZMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(name: "ZMQ", dependencies: ["CLibZMQ"], swiftSettings: swiftSettings),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(name: "JSONSchema", swiftSettings: swiftSettings),
        .target(name: "CSV", swiftSettings: swiftSettings),
        .target(name: "Wire", dependencies: ["JSONSchema"], swiftSettings: swiftSettings),
        .target(
            name: "ServiceRuntime",
            dependencies: [
                "ZMQ", "Postgres", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "TsunaguClient", dependencies: ["ZMQ", "Wire"], swiftSettings: swiftSettings),
        .target(
            name: "TsunaguTesting",
            dependencies: ["ServiceRuntime", "Gateway", "Postgres", "ZMQ", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // The gateway is a library (routing core, broker, token store; tests run it in process)
        // and a one-line executable.
        .target(
            name: "Gateway",
            dependencies: [
                "ServiceRuntime", "Postgres", "ZMQ", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "services/gateway",
            exclude: ["README.md", "main"],
            resources: [.copy("migrations")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "GatewayMain", dependencies: ["Gateway"], path: "services/gateway/main", swiftSettings: swiftSettings),
        .executableTarget(
            name: "Registry",
            dependencies: ["ServiceRuntime", "CSV", "Postgres", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log")],
            path: "services/registry",
            exclude: ["README.md", "seed"],
            resources: [.copy("migrations")],
            swiftSettings: swiftSettings
        ),
        // Meetings never reads the registry's tables: it calls the registry through the gateway.
        .executableTarget(
            name: "Meetings",
            dependencies: [
                "ServiceRuntime", "Postgres", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "services/meetings",
            exclude: ["README.md", "seed"],
            resources: [.copy("migrations")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "TsunaguCLI",
            dependencies: [
                "TsunaguClient", "ServiceRuntime", "CSV", "Postgres", "ZMQ", "Wire", "JSONSchema", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Bench",
            dependencies: [
                "TsunaguClient", "ServiceRuntime", "ZMQ", "Wire", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UnitTests",
            dependencies: ["ZMQ", "Postgres", "Wire", "JSONSchema", "ServiceRuntime", "TsunaguClient", "CSV", "Gateway", "TsunaguTesting", "Meetings",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
