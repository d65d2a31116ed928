// zlib from Debian's zlib1g-dev: deflate/inflate for .npz members, crc32 for zip entries.
// `inflateInit2`/`deflateInit2` are macros (they pass ZLIB_VERSION and the stream size),
// which Swift cannot call: these inline wrappers can.
#include <zlib.h>

static inline int czlib_inflate_init_raw(z_stream *s) { return inflateInit2(s, -MAX_WBITS); }
static inline int czlib_deflate_init_raw(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}
