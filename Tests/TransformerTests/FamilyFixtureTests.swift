// Every family fixture made by tools/make_family_fixtures.py (listed in
// fixtures/models/families.json) whose model_type is registered must match its PyTorch
// outputs to 1e-4 relative, the last output and the input of every block.

import CkptCore
import Foundation
import Formats
import Testing
import TestSupport
import Transformer

struct FamilyFixture: CustomStringConvertible, Sendable {
    var name: String
    var modelType: String
    var description: String { name }

    static let all: [FamilyFixture] = {
        guard let data = FileManager.default.contents(atPath: Repo.fixture("models/families.json")),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = json["fixtures"] as? [[String: Any]] else { return [] }
        return list.compactMap { f in
            guard let name = f["name"] as? String, let type = f["model_type"] as? String else { return nil }
            return FamilyFixture(name: name, modelType: type)
        }
    }()

    /// Fixtures of a registered family using a feature the family refuses, with the word the
    /// one-line refusal must contain.
    /// (falcon-alibi was refused until ALiBi was implemented; none is refused today.)
    static let refusedFeatures: [String: String] = [:]

    static var supported: [FamilyFixture] {
        all.filter { Architectures.modelTypes.contains($0.modelType) && refusedFeatures[$0.name] == nil }
    }
}

@Suite struct FamilyFixtureTests {
    @Test func manifestIsReadable() {
        #expect(FamilyFixture.all.count >= 30, "fixtures/models/families.json lists \(FamilyFixture.all.count) fixtures")
        let refused = Set(FamilyFixture.all.map(\.modelType)).subtracting(Architectures.modelTypes).sorted()
        print("family fixtures without a registered family: \(refused.joined(separator: ", "))")
    }

    @Test(arguments: FamilyFixture.supported)
    func matchesPyTorch(_ f: FamilyFixture) throws {
        let (out, expected) = try runFixture(f.name)
        let want = try expected.floats("output")
        #expect([out.rows, out.cols] == expected.tensors["output"]?.shape)
        let (rel, maxAbs) = relativeError(out.values, want)
        print("\(f.name): output max abs error \(maxAbs), relative \(rel)")
        #expect(rel <= 1e-4, "\(f.name): relative error \(rel)")
        for (i, h) in out.hiddenStates.enumerated() {
            let (hrel, _) = relativeError(h, try expected.floats("hidden.\(i)"))
            #expect(hrel <= 1e-4, "\(f.name): hidden state \(i) relative error \(hrel)")
        }
    }

    @Test(arguments: FamilyFixture.all.filter { FamilyFixture.refusedFeatures[$0.name] != nil })
    func refusedFeatureIsNamed(_ f: FamilyFixture) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/\(f.name)")).graph
        do {
            _ = try Transformers.load(graph)
            Issue.record("\(f.name) loaded; expected a refusal naming \(FamilyFixture.refusedFeatures[f.name]!)")
        } catch let e as TransformerError {
            #expect(e.description.contains(FamilyFixture.refusedFeatures[f.name]!), "\(e)")
        }
    }

    /// A family the registry does not know is refused with one line naming its model_type.
    @Test(arguments: FamilyFixture.all.filter { !Architectures.modelTypes.contains($0.modelType) })
    func unsupportedFamilyIsRefusedByName(_ f: FamilyFixture) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/\(f.name)")).graph
        #expect(throws: TransformerError.unsupportedArchitecture(f.modelType)) { try Transformers.load(graph) }
    }
}
