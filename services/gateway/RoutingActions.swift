/// The actions one event asks for, in order. Up to two are held inline, so the request path
/// (a send to an instance; a reply and the next queued request) allocates nothing for them;
/// more go into an array.
struct RoutingActions: RandomAccessCollection, Equatable {
    private enum Storage: Equatable {
        case none
        case one(RoutingAction)
        case two(RoutingAction, RoutingAction)
        case many([RoutingAction])
    }

    private var storage: Storage = .none

    init() {}

    var startIndex: Int { 0 }

    var endIndex: Int {
        switch storage {
        case .none: 0
        case .one: 1
        case .two: 2
        case .many(let all): all.count
        }
    }

    subscript(position: Int) -> RoutingAction {
        switch storage {
        case .one(let first) where position == 0: return first
        case .two(let first, _) where position == 0: return first
        case .two(_, let second) where position == 1: return second
        case .many(let all): return all[position]
        default: preconditionFailure("action index \(position) out of range")
        }
    }

    mutating func append(_ action: RoutingAction) {
        switch storage {
        case .none:
            storage = .one(action)
        case .one(let first):
            storage = .two(first, action)
        case .two(let first, let second):
            var all: [RoutingAction] = []
            all.reserveCapacity(8)
            all.append(first)
            all.append(second)
            all.append(action)
            storage = .many(all)
        case .many(var all):
            storage = .none  // the array is uniquely referenced again: appended in place
            all.append(action)
            storage = .many(all)
        }
    }

    mutating func append(contentsOf actions: RoutingActions) {
        for action in actions { append(action) }
    }
}
