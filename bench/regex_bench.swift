// The regex engine behind the tokenizers' pre-tokenizers: Oniguruma (what ckpt uses, and what
// Hugging Face `tokenizers` uses) against Swift Regex (on Unicode scalars, the reference's
// unit), splitting a text with GPT-2's and Llama-3's patterns. Both find the same pieces
// (checked against `tokenizers` when the choice was made); this measures the time.
//
//   swiftc -O -import-objc-header Sources/COniguruma/shim.h -lonig bench/regex_bench.swift -o /tmp/regex_bench
//   /tmp/regex_bench TEXT_FILE
import Foundation
let text = try! String(contentsOfFile: CommandLine.arguments[1], encoding: .utf8)
let patterns = [
  ("gpt2", #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#),
  ("llama3", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#),
]
_ = conig_init()
for (name, p) in patterns {
  // Oniguruma
  var reg: OnigRegex?
  var info = OnigErrorInfo()
  let pb = Array(p.utf8)
  _ = pb.withUnsafeBufferPointer { onig_new(&reg, $0.baseAddress, $0.baseAddress! + $0.count, conig_option_none(), conig_utf8(), conig_default_syntax(), &info) }
  var t = text
  var t0 = Date()
  var n = 0
  t.withUTF8 { buf in
    let region = onig_region_new()
    var pos = 0
    let base = buf.baseAddress!
    while pos < buf.count {
      let r = onig_search(reg, base, base + buf.count, base + pos, base + buf.count, region, conig_option_none())
      if r < 0 { break }
      n += 1
      pos = Int(region!.pointee.end[0])
    }
    onig_region_free(region, 1)
  }
  let onig = Date().timeIntervalSince(t0)
  // Swift Regex, on Unicode scalars (as the reference's Rust chars)
  let rx = try! Regex(p).matchingSemantics(.unicodeScalar)
  t0 = Date()
  var m = 0
  for _ in text.matches(of: rx) { m += 1 }
  let swift = Date().timeIntervalSince(t0)
  print("\(name): \(text.utf8.count) bytes, Oniguruma \(n) matches in \(String(format: "%.3f", onig)) s; Swift Regex \(m) matches in \(String(format: "%.3f", swift)) s (\(String(format: "%.0f", swift / onig))x)")
}
