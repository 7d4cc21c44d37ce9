import ServiceRuntime

/// The registry's events: `jp.tsunagu.registry.resource.*`, in `registry.outbox`.
let registryEvents = EventOutbox(schema: "registry", source: "/tsunagu/registry", typePrefix: "jp.tsunagu.registry.")
