# oneDNN (Debian's libdnnl-dev) for f32 products with bf16 inputs on the CPU
# (train.matmul_precision = bf16, core/cpu/gemm_bf16.c): its matmul primitive runs them on
# Intel AMX or AVX512-BF16 where the processor has them. Optional: without it duet builds,
# and asking for bf16 products is refused at start with one line.
option(DUET_ONEDNN "bf16 products on the CPU with oneDNN (libdnnl-dev)" ON)
add_library(duet_onednn INTERFACE)
if(DUET_ONEDNN)
  find_path(DUET_DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
  find_library(DUET_DNNL_LIBRARY dnnl)
  if(DUET_DNNL_INCLUDE_DIR AND DUET_DNNL_LIBRARY)
    message(STATUS "duet: oneDNN found (${DUET_DNNL_LIBRARY}): bf16 products on the CPU")
    target_include_directories(duet_onednn INTERFACE ${DUET_DNNL_INCLUDE_DIR})
    target_link_libraries(duet_onednn INTERFACE ${DUET_DNNL_LIBRARY})
    target_compile_definitions(duet_onednn INTERFACE DUET_HAVE_ONEDNN=1)
  else()
    message(WARNING "duet: oneDNN not found (scripts/setup.sh installs libdnnl-dev): "
                    "building without bf16 products on the CPU")
  endif()
endif()
