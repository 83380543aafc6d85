# The CBLAS behind the CPU backend (core/blas.h), as the interface target duet_blas.
#
#   openblas (default)  Debian's libopenblas-dev, found with pkg-config. It also provides
#                       LAPACK (dsyevd, used by eval/frechet.c).
#   mkl                 Intel MKL, LP64 interface, GNU OpenMP threading (the libgomp duet's own
#                       kernels use), so MKL and duet share one thread team. Found under
#                       DUET_MKL_ROOT (default: $MKLROOT, else the active Python prefix, where
#                       `pip install mkl-devel` puts it) or the system paths (Debian's
#                       libmkl-dev). pip's wheels ship only versioned names (libmkl_core.so.3),
#                       so those are searched for too.
if(DUET_BLAS STREQUAL "openblas")
  pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
  add_library(duet_blas INTERFACE)
  target_link_libraries(duet_blas INTERFACE PkgConfig::OPENBLAS)
elseif(DUET_BLAS STREQUAL "mkl")
  if(NOT DEFINED DUET_MKL_ROOT)
    if(DEFINED ENV{MKLROOT})
      set(_mkl_root "$ENV{MKLROOT}")
    elseif(DEFINED ENV{VIRTUAL_ENV})
      set(_mkl_root "$ENV{VIRTUAL_ENV}")
    else()
      set(_mkl_root "")
    endif()
    set(DUET_MKL_ROOT "${_mkl_root}" CACHE PATH "Prefix holding MKL's include/ and lib/")
  endif()
  find_path(DUET_MKL_INCLUDE_DIR mkl_cblas.h HINTS "${DUET_MKL_ROOT}/include" PATH_SUFFIXES mkl)
  set(_mkl_libs "")
  foreach(_part mkl_intel_lp64 mkl_gnu_thread mkl_core)
    find_library(DUET_MKL_${_part} NAMES ${_part} lib${_part}.so.3 lib${_part}.so.2
                 HINTS "${DUET_MKL_ROOT}/lib" "${DUET_MKL_ROOT}/lib/intel64")
    if(NOT DUET_MKL_${_part})
      message(FATAL_ERROR "duet: DUET_BLAS=mkl but lib${_part} was not found under DUET_MKL_ROOT="
                          "'${DUET_MKL_ROOT}' or the system paths (pip install mkl-devel, then "
                          "-DDUET_MKL_ROOT=<its prefix>)")
    endif()
    list(APPEND _mkl_libs ${DUET_MKL_${_part}})
  endforeach()
  if(NOT DUET_MKL_INCLUDE_DIR)
    message(FATAL_ERROR "duet: DUET_BLAS=mkl but mkl_cblas.h was not found under DUET_MKL_ROOT="
                        "'${DUET_MKL_ROOT}' (pip install mkl-include, or set DUET_MKL_ROOT)")
  endif()
  message(STATUS "duet: CBLAS is Intel MKL (${DUET_MKL_mkl_core})")
  add_library(duet_blas INTERFACE)
  target_include_directories(duet_blas INTERFACE ${DUET_MKL_INCLUDE_DIR})
  target_compile_definitions(duet_blas INTERFACE DUET_BLAS_MKL=1)
  # The three parts depend on each other both ways: keep them in one link group.
  target_link_libraries(duet_blas INTERFACE "-Wl,--start-group" ${_mkl_libs} "-Wl,--end-group"
                        OpenMP::OpenMP_C Threads::Threads m ${CMAKE_DL_LIBS})
else()
  message(FATAL_ERROR "duet: DUET_BLAS must be openblas or mkl, not '${DUET_BLAS}'")
endif()
