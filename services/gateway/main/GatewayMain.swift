import Gateway

/// tsunagu-gateway: the whole process is `GatewayServer.main()` (services/gateway).
@main
enum GatewayMain {
    static func main() { GatewayServer.main() }
}
