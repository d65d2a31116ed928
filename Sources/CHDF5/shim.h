// CHDF5: libhdf5 (Debian libhdf5-dev, `pkg-config hdf5`) for Swift.
//
// Many of HDF5's constants are macros that expand to a call plus a global
// (`H5T_NATIVE_FLOAT` -> `(H5open(), H5T_NATIVE_FLOAT_g)`), which Swift cannot
// import, and whose `_g` globals trip Swift 6's strict concurrency checking.
// Each gets a tiny inline getter here. No logic lives in this module.
#ifndef CKPT_CHDF5_SHIM_H
#define CKPT_CHDF5_SHIM_H

#include <hdf5.h>

// Property lists, dataspaces, access flags.
static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline unsigned chdf5_f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline hid_t chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t chdf5_p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t chdf5_p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline hid_t chdf5_p_link_access(void) { return H5P_LINK_ACCESS; }
static inline hid_t chdf5_p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t chdf5_e_default(void) { return H5E_DEFAULT; }
static inline hid_t chdf5_p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t chdf5_p_attribute_create(void) { return H5P_ATTRIBUTE_CREATE; }
static inline haddr_t chdf5_haddr_undef(void) { return HADDR_UNDEF; }
static inline hsize_t chdf5_s_unlimited(void) { return H5S_UNLIMITED; }

// Native and standard datatypes.
static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_native_int16(void) { return H5T_NATIVE_INT16; }
static inline hid_t chdf5_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t chdf5_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t chdf5_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t chdf5_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t chdf5_ieee_f32be(void) { return H5T_IEEE_F32BE; }
static inline hid_t chdf5_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t chdf5_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t chdf5_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t chdf5_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t chdf5_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t chdf5_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t chdf5_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t chdf5_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }

// Library version, for `ckpt --version`.
static inline void chdf5_version(unsigned *major, unsigned *minor, unsigned *release) {
    H5get_libversion(major, minor, release);
}

#endif
