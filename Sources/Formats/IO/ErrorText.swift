// One line for any error, never Foundation's internals: ckpt's own errors describe
// themselves; errors from Foundation's file calls (CocoaError, NSError with a POSIX
// underlying error) become "PATH: what is wrong" instead of "Error Domain=NSCocoaErrorDomain
// Code=260 ...".

import Foundation

public enum ErrorText {
    public static func line(_ error: any Error) -> String {
        let text: String
        if let e = error as? CocoaError {
            text = cocoa(e.code.rawValue, path: e.filePath ?? e.userInfo[NSFilePathErrorKey] as? String ?? e.url?.path,
                         underlying: e.underlying)
        } else if let e = error as? POSIXError {
            text = String(cString: strerror(e.code.rawValue))
        } else if type(of: error) is NSError.Type {
            let e = error as NSError
            if e.domain == NSPOSIXErrorDomain {
                text = ((e.userInfo[NSFilePathErrorKey] as? String).map { $0 + ": " } ?? "") + String(cString: strerror(Int32(e.code)))
            } else if e.domain == NSCocoaErrorDomain {
                text = cocoa(e.code, path: e.userInfo[NSFilePathErrorKey] as? String, underlying: e.userInfo[NSUnderlyingErrorKey] as? Error)
            } else {
                text = e.localizedFailureReason ?? e.localizedDescription
            }
        } else {
            text = "\(error)"
        }
        return text.replacingOccurrences(of: "\n", with: " ")
    }

    static func cocoa(_ code: Int, path: String?, underlying: (any Error)?) -> String {
        let what: String
        switch CocoaError.Code(rawValue: code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: what = "no such file or directory"
        case .fileWriteFileExists: what = "already exists"
        case .fileReadNoPermission, .fileWriteNoPermission: what = "permission denied"
        case .fileWriteOutOfSpace: what = "no space left on device"
        case .fileWriteVolumeReadOnly: what = "read-only file system"
        case .fileReadCorruptFile: what = "unreadable (corrupt?)"
        case .fileReadTooLarge: what = "too large to read"
        default:
            if let u = underlying as NSError?, u.domain == NSPOSIXErrorDomain {
                what = String(cString: strerror(Int32(u.code)))
            } else {
                what = "file operation failed"
            }
        }
        return (path.map { $0 + ": " } ?? "") + what
    }
}
