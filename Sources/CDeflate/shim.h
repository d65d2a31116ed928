// libdeflate from Debian's libdeflate-dev (pkg-config libdeflate): whole-buffer DEFLATE
// compression and decompression, and CRC32. No logic here.
#include <libdeflate.h>
