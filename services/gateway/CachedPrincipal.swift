import Wire

/// A principal as the routing core keeps it for a token: with its JSON written once, so the
/// envelope sent to a worker on its behalf splices the text in instead of writing it again.
struct CachedPrincipal {
    let principal: Principal
    let json: [UInt8]

    init(_ principal: Principal) {
        self.principal = principal
        self.json = principal.encodedJSON()
    }
}
