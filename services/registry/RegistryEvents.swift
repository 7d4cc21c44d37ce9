import ServiceRuntime

/// The registry's events: `jp.tsunagu.registry.resource.*`, stream `registry`, in `registry.events`
/// (the runtime's table; docs/events.md lists every type).
let registryEvents = EventStream(name: "registry", typePrefix: "jp.tsunagu.registry.")
