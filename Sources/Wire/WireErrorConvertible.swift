/// An error that knows the reply a client should get. At the boundary (a service's dispatcher,
/// the gateway's own operations) an error that conforms says its code; any other error is
/// answered `internal` and logged once under the request id.
public protocol WireErrorConvertible: Error {
    var wireError: WireError { get }
}

extension WireError: WireErrorConvertible {
    public var wireError: WireError { self }
}
