import Foundation
import ServiceRuntime

/// tsunagu-registry: the region's care resources. This first slice serves the area hierarchy.
@main
enum RegistryMain {
    static func main() async {
        await ServiceRunner.main {
            ServiceDefinition(
                name: "registry",
                version: "0.1.0",
                schema: "registry",
                migrations: try ServiceRunner.bundledMigrations(in: .module),
                operations: try AreaOperations.all() + AreaGroups.operations() + Taxonomy.operations()
                    + Resources.operations() + Backups.operations() + Search.operations() + Participation.operations() + ResourceImport.operations() + ResourceExport.operations()
                    + registryEvents.operations(),
                events: registryEvents
            )
        }
    }
}
