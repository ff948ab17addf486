# Helpers shared by every module's CMakeLists.txt.

# curve_unit_test(<name> SOURCES a.c b.c LIBS lib1 lib2 [LABELS extra] [TIMEOUT s])
# A cmocka test executable registered with CTest under the "unit" label; runs in the
# sanitizer build too.
function(curve_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()

# curve_py_test(<name> <file.py> [LABELS l] [TIMEOUT s])
# A pytest process-level test. It finds binaries through CURVE_BUILD_DIR. Not run in the
# sanitizer build (it measures real processes; the unit tests cover the sanitizers).
function(curve_py_test name file)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS" ${ARGN})
  if(CURVE_SANITIZE)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name}
           COMMAND ${Python3_EXECUTABLE} -m pytest -x -q -p no:cacheprovider
                   ${CMAKE_CURRENT_SOURCE_DIR}/${file})
  set_tests_properties(${name} PROPERTIES LABELS "integration;${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "CURVE_BUILD_DIR=${CMAKE_BINARY_DIR};CURVE_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/lib")
endfunction()

# curve_fuzz_target(<name> SOURCES ... LIBS ... [SECONDS n])
# A libFuzzer target (clang only, CURVE_FUZZ=ON) run for a bounded time under CTest.
function(curve_fuzz_target name)
  cmake_parse_arguments(T "" "SECONDS" "SOURCES;LIBS" ${ARGN})
  if(NOT CURVE_FUZZ)
    return()
  endif()
  if(NOT T_SECONDS)
    set(T_SECONDS 20)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} -max_total_time=${T_SECONDS} -rss_limit_mb=2048)
  set_tests_properties(${name} PROPERTIES LABELS "fuzz" TIMEOUT 600)
endfunction()
