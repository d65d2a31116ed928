// `ckpt convert` and `ckpt inspect` on files written by torch.save, and on malicious ones.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct PyTorchCommandTests {
    @Test(arguments: [
        ("torch/tiny-gpt2-bin/pytorch_model.bin", "torch/tiny-gpt2.expected.safetensors"),
        ("torch/tiny-gpt2-bin", "torch/tiny-gpt2.expected.safetensors"),
        ("torch/tiny-gpt2-bin-sharded", "torch/tiny-gpt2.expected.safetensors"),
        ("torch/dtypes.pt", "torch/dtypes.expected.safetensors"),
        ("torch/views_legacy.pt", "torch/views.expected.safetensors"),
    ])
    func convertIsByteIdenticalToSaveFile(input: String, expected: String) throws {
        // A directory output: its model.safetensors has the library's bytes (a single-file
        // output would add the model config to the metadata, when there is one).
        let dir = TempDir()
        let r = try CkptBinary.run("convert", Repo.fixture(input), dir.file("out") + "/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("out/model.safetensors")) == readFile(Repo.fixture(expected)), "\(input)")
    }

    @Test func shardedTorchDirectoryToShardedSafetensorsKeepsTheConfig() throws {
        let dir = TempDir()
        let r = try CkptBinary.run("convert", Repo.fixture("torch/tiny-gpt2-bin-sharded"), dir.file("out"), "--max-shard-size", "40KB")
        #expect(r.status == 0, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.file("out"))
        #expect(files.contains("model.safetensors.index.json") && files.contains("config.json"))
        // The Python library reads every shard back with the tensors torch saved.
        let check = try Python.run("""
            import json, sys, os
            from safetensors.numpy import load_file
            d = sys.argv[1]
            idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
            n = sum(len(load_file(os.path.join(d, f))) for f in set(idx["weight_map"].values()))
            print(n, "lm_head.weight" in idx["weight_map"])
            """, [dir.file("out")])
        #expect(check.stdout == "28 False\n", "\(check.stderr)")
    }

    @Test func inspectReportsFormatAndTie() throws {
        let r = try CkptBinary.run("inspect", Repo.fixture("torch/tiny-gpt2-bin/pytorch_model.bin"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        #expect(v["format"]?.stringValue == "pytorch")
        #expect(v["ties"]?["lm_head.weight"]?.stringValue == "transformer.wte.weight")
        #expect(v["tensors"]?.arrayValue?.count == 28)
        #expect(v["parameters"]?.intValue == 30_592)
        let human = try CkptBinary.run("inspect", Repo.fixture("torch/views.pt"))
        #expect(human.stdout.contains("pytorch, 9 tensors"), "\(human.stdout)")
    }
}

/// Malicious pickles: refused with one line and status 2, and their payload — which Python's
/// pickle does run — never runs.
@Suite struct MaliciousPickleTests {
    /// Loads a torch file's pickle with Python's own unpickler (storages stubbed out), in an
    /// environment where the payload's `touch "$CKPT_PWNED"` has somewhere to write.
    static let pythonLoad = """
        import io, pickle, sys, zipfile
        path = sys.argv[1]
        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return None
        if zipfile.is_zipfile(path):
            z = zipfile.ZipFile(path)
            f = io.BytesIO(z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0]))
        else:
            f = open(path, "rb")
            for _ in range(3):
                pickle.load(f)  # legacy: magic number, protocol version, sys_info
        try:
            Unpickler(f).load()
        except Exception as e:  # torch is not installed here: the load fails after the payload
            print(type(e).__name__)
        """

    static func environment(_ marker: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CKPT_PWNED"] = marker
        return env
    }

    @Test(arguments: [
        ("os_system.pt", "posix.system"),
        ("eval.pt", "__builtin__.eval"),  // protocol 2 names builtins by their Python 2 module
        ("legacy_os_system.pt", "posix.system"),
    ])
    func payloadRunsUnderPythonButNotUnderCkpt(file: String, global: String) throws {
        let dir = TempDir()
        let evil = Repo.fixture("torch/evil/" + file)

        // ckpt: refused, one line naming the global, status 2, and no marker file.
        let marker = dir.file("pwned-by-ckpt")
        for command in [["inspect", evil], ["convert", evil, dir.file("out.safetensors")]] {
            let r = try runProcess(CkptBinary.path, command, environment: Self.environment(marker))
            #expect(r.status == 2, "\(command): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.contains("`\(global)`") && r.stderr.contains(file), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "ckpt executed the payload")
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.safetensors")))

        // Control: the same file under Python's pickle does run the payload, so the check
        // above would have caught ckpt executing it.
        let control = dir.file("pwned-by-python")
        guard FileManager.default.isExecutableFile(atPath: Python.path) else {
            throw SupportError("no Python at \(Python.path): run `make test` or set CKPT_PYTHON")
        }
        _ = try runProcess(Python.path, ["-c", Self.pythonLoad, evil], environment: Self.environment(control))
        #expect(FileManager.default.fileExists(atPath: control), "the fixture's payload is not live")
    }

    @Test func aPickledModuleIsRefusedNamingItsClass() throws {
        let r = try CkptBinary.run("inspect", Repo.fixture("torch/evil/module.pt"))
        #expect(r.status == 2)
        #expect(r.stderr.contains("`torch.nn.modules.linear.Linear`"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test func handMadeAttacksFailWithOneLine() throws {
        let dir = TempDir()
        var inst = PickleBytes()
        inst.mark(); inst.raw(0x69); inst.bytes += Array("os\nsystem\n".utf8); inst.stop()
        let storage = [(key: "0", bytes: f32Bytes([1, 2, 3, 4, 5, 6]))]
        let cases: [(String, [UInt8], String)] = [
            ("inst.pt", ZipBytes.torch(pickle: inst.bytes, storages: storage), "opcode INST"),
            ("oversized.pt", ZipBytes.torch(pickle: PickleBytes.stateDict([("w", "FloatStorage", "0", 1 << 40, 0, [6], [1])]), storages: storage),
             "storage `0`: FloatStorage of 1099511627776 elements needs 4398046511104 bytes"),
            ("past-end.pt", ZipBytes.torch(pickle: PickleBytes.stateDict([("w", "FloatStorage", "0", 6, 4, [3], [1])]), storages: storage),
             "tensor `w`: view (offset 4, size [3], stride [1]) runs past the end"),
        ]
        for (name, bytes, mention) in cases {
            try writeFile(dir.file(name), bytes)
            let r = try CkptBinary.run("convert", dir.file(name), dir.file("out.safetensors"))
            #expect(r.status == 2, "\(name): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.contains(mention), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.safetensors")))
    }

    @Test func malformedArchivesFailCleanly() throws {
        let dir = TempDir()
        let good = try readFile(Repo.fixture("torch/dtypes.pt"))
        try writeFile(dir.file("cut.pt"), Array(good.prefix(good.count - 30)))
        let r = try CkptBinary.run("convert", dir.file("cut.pt"), dir.file("out.safetensors"))
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("ckpt: error: \(dir.file("cut.pt")): "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(dir.contents() == ["cut.pt"])
    }
}
