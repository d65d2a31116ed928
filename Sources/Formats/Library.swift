import CHDF5

/// Versions of the C libraries ckpt is linked against, for `ckpt --version`.
public enum LinkedLibraries {
    public static var hdf5Version: String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        chdf5_version(&major, &minor, &release)
        return "\(major).\(minor).\(release)"
    }
}
