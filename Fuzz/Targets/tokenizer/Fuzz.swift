// A tokenizer.json: parsed and built as `Tokenizer.load` does once it has the file's bytes
// (normalizers, pre-tokenizers and their regexes, the BPE/WordPiece/WordLevel/Unigram model,
// added tokens, post-processor, decoder), then a few short texts encoded and the ids decoded.
// Whatever loads must encode without trapping; a hostile regex that backtracks for ever is a
// timeout.
import Tokenizer

private let texts = [
    "Hello, world! It's 2024: 3.14 ünïcödé   spaces\n\ttabs",
    "<s>[CLS] 日本語のテキスト 🙂👍🏽 <|endoftext|> [SEP]</s>",
    "",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let tokenizer = try? Tokenizer(jsonBytes: Array(UnsafeBufferPointer(start: data, count: size))) else { return 0 }
    for text in texts {
        if let ids = try? tokenizer.encode(text) { _ = tokenizer.decode(ids) }
    }
    return 0
}
