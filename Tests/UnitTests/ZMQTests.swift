import Foundation
import Testing
import ZMQ

@Suite struct ZMQTests {
    @Test func multipartRoundTripOverInproc() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let server = try context.socket(.router)
        let client = try context.socket(.dealer)
        defer {
            try? client.close()
            try? server.close()
        }
        try server.bind("inproc://roundtrip")
        try client.connect("inproc://roundtrip")
        try client.send([Data(), Data("hello".utf8), Data([0, 1, 2])])
        let received = try server.receive()
        #expect(received.count == 4)  // identity + our three frames
        #expect(Array(received.dropFirst()) == [Data(), Data("hello".utf8), Data([0, 1, 2])])
        try server.send([received[0], Data("back".utf8)])
        #expect(try client.receive() == [Data("back".utf8)])
    }

    @Test func receiveWithoutWaitingThrowsWouldBlock() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let socket = try context.socket(.dealer)
        defer { try? socket.close() }
        try socket.bind("inproc://empty")
        #expect(throws: ZMQError(.wouldBlock, errno: EAGAIN)) { try socket.receive(dontWait: true) }
    }

    @Test func aClosedSocketThrowsSocketClosed() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let socket = try context.socket(.dealer)
        try socket.close()
        #expect(throws: ZMQError(.socketClosed)) { try socket.send([Data()]) }
        #expect(throws: ZMQError(.socketClosed)) { try socket.close() }
    }

    @Test func bindingTwiceIsAddressInUse() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let first = try context.socket(.router)
        let second = try context.socket(.router)
        defer {
            try? first.close()
            try? second.close()
        }
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = try first.lastEndpoint()
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(throws: ZMQError.self) { try second.bind(endpoint) }
        do { try second.bind(endpoint) } catch { #expect(error.code == .addressInUse) }
    }

    @Test func badEndpointIsATypedError() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let socket = try context.socket(.dealer)
        defer { try? socket.close() }
        #expect(throws: ZMQError.self) { try socket.connect("nonsense://x") }
    }

    @Test func pollTimesOutAndWakesOnThePipe() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let socket = try context.socket(.dealer)
        defer { try? socket.close() }
        try socket.bind("inproc://poll")
        let pipe = try WakeupPipe()
        #expect(try zmqPoll([.socket(socket), .fileDescriptor(pipe.readDescriptor)], timeoutMs: 10) == [false, false])
        pipe.wake()
        #expect(try zmqPoll([.socket(socket), .fileDescriptor(pipe.readDescriptor)], timeoutMs: 1000) == [false, true])
        pipe.drain()
        #expect(try zmqPoll([.fileDescriptor(pipe.readDescriptor)], timeoutMs: 0) == [false])
    }

    @Test func curveKeyPairsAreZ85() throws {
        #expect(zmqHasCurve())
        let pair = try ZMQCurveKeyPair.generate()
        #expect(pair.publicKey.count == 40 && pair.secretKey.count == 40)
    }

    @Test func curveEncryptedRoundTrip() throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let serverKeys = try ZMQCurveKeyPair.generate()
        let clientKeys = try ZMQCurveKeyPair.generate()
        let server = try context.socket(.router)
        let client = try context.socket(.dealer)
        defer {
            try? client.close()
            try? server.close()
        }
        try server.makeCurveServer(secretKey: Data(serverKeys.secretKey.utf8))
        try server.bind("tcp://127.0.0.1:*")
        try client.makeCurveClient(serverKey: Data(serverKeys.publicKey.utf8), publicKey: Data(clientKeys.publicKey.utf8),
                                   secretKey: Data(clientKeys.secretKey.utf8))
        try client.connect(try server.lastEndpoint())
        try client.send([Data("secret".utf8)])
        #expect(try zmqPoll([.socket(server)], timeoutMs: 5000) == [true])
        #expect(try server.receive().last == Data("secret".utf8))
    }
}
