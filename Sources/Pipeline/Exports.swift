// Verification lives in its own module (no YAML); `import Pipeline` keeps bringing it along.
@_exported import Verify
