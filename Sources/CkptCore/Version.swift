/// ckpt's version, recorded in outputs' metadata and provenance.
public enum CkptInfo {
    public static let version = "0.1.0"
}
