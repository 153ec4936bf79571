# Helpers shared by every part of the tree.

# Python used by integration tests: Debian's interpreter, so that packages
# installed with apt (python3-dbusmock, ...) are importable.
if(EXISTS /usr/bin/python3)
  set(NRFGW_PYTHON /usr/bin/python3 CACHE FILEPATH "Python for integration tests")
else()
  find_program(NRFGW_PYTHON python3 REQUIRED)
endif()

# The libFuzzer build instruments everything with AddressSanitizer and
# UndefinedBehaviorSanitizer as well: a fuzzer finds out-of-bounds reads,
# use-after-free, leaks and undefined behaviour, not only crashes.
if(NRFGW_FUZZ)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# nrfgw_add_unit_test(NAME SOURCES src... [LIBS lib...])
#   A cmocka test binary run by ctest.
function(nrfgw_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  # Each test's UUCP port lock files (LCK..<dev>) in a folder of its own, not /run/lock.
  file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/lock/${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "NRFCLOUD_GATEWAY_LOCK_DIR=${PROJECT_BINARY_DIR}/lock/${name}")
endfunction()

# nrfgw_add_fuzzer(NAME SOURCES src... [LIBS lib...])
#   SOURCES define LLVMFuzzerTestOneInput(). Always builds a replay binary that
#   feeds every file of tests/fuzz/corpus/NAME/ through it (a ctest test);
#   with NRFGW_FUZZ=ON also builds the libFuzzer binary NAME.
function(nrfgw_add_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  set(corpus ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
  add_executable(${name}-replay ${F_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay.c)
  target_link_libraries(${name}-replay PRIVATE ${F_LIBS})
  add_test(NAME ${name}-corpus COMMAND ${name}-replay ${corpus})
  set_tests_properties(${name}-corpus PROPERTIES LABELS fuzz-corpus TIMEOUT 300)
  if(NRFGW_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    set_property(GLOBAL APPEND PROPERTY NRFGW_FUZZERS ${name})
  endif()
endfunction()

# nrfgw_add_python_test(NAME SCRIPT [ENV VAR=VALUE...] [TIMEOUT s] [LABELS l])
#   An integration test written in Python (unittest), run by ctest.
function(nrfgw_add_python_test name script)
  cmake_parse_arguments(P "" "TIMEOUT" "ENV;LABELS" ${ARGN})
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${NRFGW_PYTHON} -u ${script})
  file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/lock/${name})
  set_tests_properties(${name} PROPERTIES
    LABELS "integration;${P_LABELS}" TIMEOUT ${P_TIMEOUT}
    ENVIRONMENT "NRFGW_BUILD_DIR=${PROJECT_BINARY_DIR};NRFGW_SOURCE_DIR=${PROJECT_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1;NRFCLOUD_GATEWAY_LOCK_DIR=${PROJECT_BINARY_DIR}/lock/${name};${P_ENV}")
endfunction()
