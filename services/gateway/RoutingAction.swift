import Foundation
import Logging
import Wire

/// One thing `RoutingCore` asks its shell (`Broker`) to do. The shell performs actions in the
/// order given and feeds back what only it can learn: lookup results, and sends that failed.
enum RoutingAction: Equatable {
    /// What goes to a worker after `[identity, "", "MDPW01"]`.
    enum WorkerCommand: Equatable {
        /// `[0x02, client address, "", body...]`; the address is `correlation` as 8 bytes, big-endian.
        case request(correlation: UInt64, body: [Data])
        case heartbeat
        case disconnect
    }

    /// A request for the gateway's own service, `tsunagu.gateway`, with its authenticated caller.
    struct GatewayCall: Equatable {
        let identity: Data
        let envelope: RequestEnvelope
        /// The payload frame (empty when the client sent none).
        let payload: Data
        let principal: Principal
    }

    /// `[identity, "", "MDPC01", service, body...]` on the client socket.
    case sendToClient(identity: Data, service: String, body: [Data])
    /// A Tsunagu error reply, `[identity, "", "MDPC01", service, "TSUNAGU/1", error envelope]`.
    case replyError(identity: Data, service: String, requestID: String, WireError)
    /// A message to an instance on the worker socket. A failed send is fed back
    /// (`RoutingCore.workerSendsFailed`).
    case sendToWorker(identity: Data, WorkerCommand)
    /// `[identity, "TSUNAGU-EVENTS/1", command, body]` on the events-out socket. A send that would
    /// block is dropped (for that subscriber only) and fed back (`RoutingCore.subscriberSendsFailed`).
    case sendToSubscriber(identity: Data, EventStreamWire.Command, body: Data)
    /// Look up who a bearer token stands for; feed the outcome back (`tokenLookupFinished`).
    case lookUpToken(String)
    /// Look up a service credential; feed the outcome back (`credentialLookupFinished`).
    case lookUpCredential(String)
    /// Run a built-in operation (`GatewayOperations`); it answers the client itself.
    indirect case runGatewayOperation(GatewayCall)
    case log(Logger.Level, Logger.Message, Logger.Metadata = [:])
}
