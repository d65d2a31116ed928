// Oniguruma from Debian's libonig-dev: the regex engine Hugging Face `tokenizers` itself uses,
// so Split/ByteLevel/Replace patterns behave exactly as in the reference. The encoding,
// syntax and option constants are macros over globals; these getters let Swift use them.
#include <oniguruma.h>

static inline OnigEncoding conig_utf8(void) { return ONIG_ENCODING_UTF8; }
static inline OnigSyntaxType *conig_default_syntax(void) { return ONIG_SYNTAX_DEFAULT; }
static inline OnigOptionType conig_option_none(void) { return ONIG_OPTION_NONE; }
static inline int conig_init(void) {
    OnigEncoding encs[1] = { ONIG_ENCODING_UTF8 };
    return onig_initialize(encs, 1);
}
// onig_error_code_to_str is variadic, which Swift cannot call.
static inline int conig_error_string(OnigUChar *buf, int code, OnigErrorInfo *info) {
    return onig_error_code_to_str(buf, code, info);
}
