// Issue 13's sweep over files written by the real libraries: format detection, the model
// config travelling with single-file outputs, and metadata and messages that say what a
// file is.

import CkptCore
import Foundation
import Testing
import TestSupport

/// Writes the sweep files with the Python safetensors library (tools/safetensors_sweep.py).
func safetensorsSweep(_ dir: TempDir) throws -> [String] {
    let script = Repo.root.appendingPathComponent("tools/safetensors_sweep.py").path
    let r = try runProcess(Python.path, [script, dir.file("sweep")])
    guard r.status == 0 else { throw SupportError("safetensors_sweep.py failed: \(r.stderr)") }
    return try FileManager.default.contentsOfDirectory(atPath: dir.file("sweep")).sorted().map { dir.file("sweep/" + $0) }
}

@Suite struct DetectionSweepTests {
    /// Header lengths are multiples of 8, so their low byte takes 32 values; one of them,
    /// 0x80, is the byte a pickle starts with. Every such file opens, inspects and converts.
    @Test func everyHeaderLengthLowByteOpensInspectsAndConverts() throws {
        let dir = TempDir()
        let files = try safetensorsSweep(dir)
        #expect(files.count == 32)
        #expect(files.contains { $0.hasSuffix("sweep_80.safetensors") })
        for f in files {
            let name = URL(fileURLWithPath: f).lastPathComponent
            let inspect = try CkptBinary.run("inspect", f, "--json")
            #expect(inspect.status == 0, "\(name): \(inspect.stderr)")
            #expect((try? JSONValue.parse(inspect.stdout))?["format"]?.stringValue == "safetensors", "\(name)")
            let out = dir.file("out-" + name)
            let convert = try CkptBinary.run("convert", f, out)
            #expect(convert.status == 0, "\(name): \(convert.stderr)")
            // No config to carry: the library's own bytes come back.
            #expect(try readFile(out) == readFile(f), "\(name)")
            let npz = try CkptBinary.run("convert", f, dir.file(name + ".npz"))
            #expect(npz.status == 0, "\(name): \(npz.stderr)")
        }
    }

    @Test func zipArchivesAreNamedForWhatTheyHold() throws {
        let dir = TempDir()
        // A renamed .npz is read as one.
        try FileManager.default.copyItem(atPath: Repo.fixture("npz/stored.npz"), toPath: dir.file("weights.bin"))
        let npz = try CkptBinary.run("inspect", dir.file("weights.bin"), "--json")
        #expect(npz.status == 0, "\(npz.stderr)")
        #expect((try? JSONValue.parse(npz.stdout))?["format"]?.stringValue == "npz")
        // TorchScript: one line saying what it is and what to do.
        let ts = try CkptBinary.run("inspect", Repo.fixture("torch/scripted.pt"))
        #expect(ts.status == 2 && ts.stderr.contains("TorchScript") && ts.stderr.contains("state_dict()"), "\(ts.stderr)")
        #expect(!ts.stderr.contains("zip member"))
    }

    /// Keras 3's model.save archive: its weights (model.weights.h5 inside) are read; h5py's
    /// reading of that member is the reference.
    @Test func kerasArchiveIsRead() throws {
        let dir = TempDir()
        let keras = Repo.fixture("keras/tiny.keras")
        let r = try CkptBinary.run("convert", keras, dir.file("k.safetensors"))
        #expect(r.status == 0, "\(r.stderr)")
        let check = try Python.run("""
            import io, sys, zipfile, h5py, numpy as np
            from safetensors.numpy import load_file
            z = zipfile.ZipFile(sys.argv[1])
            arrays = []
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
                f.visititems(lambda n, o: arrays.append(o[()]) if isinstance(o, h5py.Dataset) else None)
            got = list(load_file(sys.argv[2]).values())
            key = lambda a: (a.shape, a.tobytes())
            print(len(arrays), sorted(map(key, arrays)) == sorted(map(key, got)))
            """, [keras, dir.file("k.safetensors")])
        #expect(check.stdout == "4 True\n", "\(check.stdout) \(check.stderr)")
    }
}

@Suite struct ConfigTravelsTests {
    let tokens = "1,5,9,33,2,17"

    func forward(_ model: String, _ out: String) throws -> [UInt8] {
        let r = try CkptBinary.run("forward", model, "--tokens", tokens, "--output", out)
        #expect(r.status == 0, "\(model): \(r.stderr)")
        return (try? readFile(out)) ?? []
    }

    /// `convert MODEL_DIR x.<fmt>` then `forward x.<fmt>`: the same logits as the
    /// directory, with no config given by hand (none lies beside the outputs).
    @Test(arguments: ["gpt2-a", "llama-gqa", "bert-a"])
    func everyWritableFormatCarriesTheConfig(_ model: String) throws {
        let dir = TempDir()
        let src = Repo.fixture("models/\(model)")
        let ref = try forward(src, dir.file("ref.npy"))
        #expect(!ref.isEmpty)
        for ext in ["safetensors", "h5", "ckz", "gguf", "npz"] {
            let out = dir.file("x.\(ext)")
            let r = try CkptBinary.run("convert", src, out)
            #expect(r.status == 0, "\(model) \(ext): \(r.stderr)")
            #expect(try forward(out, dir.file("\(ext).npy")) == ref, "\(model) \(ext)")
            // Back to a directory: config.json as it was.
            let back = try CkptBinary.run("convert", out, dir.file("back-\(ext)") + "/")
            #expect(back.status == 0, "\(r.stderr)")
            #expect(try readFile(dir.file("back-\(ext)/config.json")) == readFile(src + "/config.json"), "\(model) \(ext)")
        }
        // The Python libraries see it too: safetensors metadata and an .npz member.
        let py = try Python.run("""
            import json, sys, numpy as np
            from safetensors import safe_open
            with safe_open(sys.argv[1], "np") as f:
                a = json.loads(f.metadata()["ckpt.hf_config"])
            b = json.loads(bytes(np.load(sys.argv[2])["config.json"]))
            c = json.load(open(sys.argv[3]))
            print(a == c, b == c)
            """, [dir.file("x.safetensors"), dir.file("x.npz"), src + "/config.json"])
        #expect(py.stdout == "True True\n", "\(py.stdout) \(py.stderr)")
    }

    /// Through a single file and back to a directory, model.safetensors keeps the source's
    /// bytes: the config moves from the metadata back to config.json.
    @Test func singleFileAndBackIsByteIdentical() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("one.safetensors")).status == 0)
        #expect(try CkptBinary.run("convert", dir.file("one.safetensors"), dir.file("back") + "/").status == 0)
        #expect(try readFile(dir.file("back/model.safetensors")) == readFile(Repo.fixture("tiny-gpt2/model.safetensors")))
        #expect(try readFile(dir.file("back/config.json")) == readFile(Repo.fixture("tiny-gpt2/config.json")))
    }

    @Test func aStructurallyPrunedSingleFileRuns() throws {
        let dir = TempDir()
        let out = dir.file("p.safetensors")
        var r = try CkptBinary.run("prune", Repo.fixture("models/llama-gqa"), out, "--heads", "2", "--write-config")
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("forward", out, "--tokens", tokens)
        #expect(r.status == 0, "\(r.stderr)")
        let beside = try JSONValue.parse(readFile(dir.file("config.json")))
        #expect(beside["num_attention_heads"]?.intValue == 2 && beside["num_key_value_heads"]?.intValue == 1)
        // An existing, different config.json beside the output is not replaced.
        r = try CkptBinary.run("convert", Repo.fixture("models/gpt2-a"), dir.file("g.safetensors"), "--write-config")
        #expect(r.status == 2 && r.stderr.contains("different config"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("g.safetensors")))
    }

    /// A config.json beside the file wins over the embedded one.
    @Test func aConfigBesideTheFileWins() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.safetensors")).status == 0)
        var r = try CkptBinary.run("inspect", dir.file("m.safetensors"), "--json")
        #expect(try JSONValue.parse(r.stdout)["config"]?["n_layer"]?.intValue == 2)
        try writeFile(dir.file("config.json"), Array(#"{"model_type": "gpt2", "n_layer": 7}"#.utf8))
        r = try CkptBinary.run("inspect", dir.file("m.safetensors"), "--json")
        #expect(try JSONValue.parse(r.stdout)["config"]?["n_layer"]?.intValue == 7)
    }

    /// GGUF -> safetensors -> GGUF keeps the architecture and its keys, as gguf-py reads them.
    @Test func ggufThroughSafetensorsKeepsTheArchitecture() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("models/llama-gqa"), dir.file("a.gguf")).status == 0)
        #expect(try CkptBinary.run("convert", dir.file("a.gguf"), dir.file("b.safetensors")).status == 0)
        #expect(try CkptBinary.run("convert", dir.file("b.safetensors"), dir.file("c.gguf")).status == 0)
        let py = try Python.run("""
            import sys, gguf
            r = gguf.GGUFReader(sys.argv[1])
            print(r.fields["general.architecture"].contents(), r.fields["llama.block_count"].contents())
            """, [dir.file("c.gguf")])
        #expect(py.stdout == "llama 2\n", "\(py.stdout) \(py.stderr)")
    }
}

@Suite struct DerivedMetadataTests {
    /// A Q8_0 GGUF written by gguf-py (general.file_type = 7), dequantized to f32 and written
    /// back to GGUF: file_type describes the new tensors (0, all f32).
    @Test func fileTypeFollowsTheTensors() throws {
        let dir = TempDir()
        let make = try Python.run("""
            import sys, numpy as np, gguf
            w = gguf.GGUFWriter(sys.argv[1], "llama")
            w.add_file_type(7)
            x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
            w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                         raw_shape=gguf.quants.quant_shape_to_byte_shape(x.shape, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor("blk.0.ffn_norm.weight", np.ones(64, dtype=np.float32))
            w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
            """, [dir.file("q8.gguf")])
        #expect(make.status == 0, "\(make.stderr)")
        var r = try CkptBinary.run("convert", dir.file("q8.gguf"), dir.file("f32.gguf"), "--dequantize")
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("convert", dir.file("q8.gguf"), dir.file("same.gguf"))
        #expect(r.status == 0, "\(r.stderr)")
        let py = try Python.run("""
            import sys, gguf
            for p in sys.argv[1:]:
                r = gguf.GGUFReader(p)
                print(r.fields["general.file_type"].contents(), sorted({t.tensor_type.name for t in r.tensors}))
            """, [dir.file("f32.gguf"), dir.file("same.gguf")])
        #expect(py.stdout == "0 ['F32']\n7 ['F32', 'Q8_0']\n", "\(py.stdout) \(py.stderr)")
    }
}
