import Foundation
import ServiceRuntime

/// tsunagu-registry: the region's care resources (areas, taxonomy, organisations and resources,
/// backups, participation, search, import and export, events; see README.md). Its `main` is the
/// service's definition handed to `ServiceRunner.main`, which migrates, registers and serves.
@main
enum RegistryMain {
    static func main() {
        ServiceRunner.main {
            ServiceDefinition(
                name: "registry",
                version: "0.1.0",
                schema: "registry",
                migrations: try ServiceRunner.bundledMigrations(in: .module),
                operations: try AreaOperations.all() + AreaGroups.operations() + AreaPlaces.operations() + Taxonomy.operations()
                    + Resources.operations() + Backups.operations() + Search.operations() + Participation.operations() + ResourceImport.operations() + ResourceExport.operations()
                    + registryEvents.operations(),
                events: registryEvents
            )
        }
    }
}
