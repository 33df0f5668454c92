# `cmake --install` into a fresh prefix, then checks what landed there (issue 13, packaging):
# exactly the expected files; a systemd unit of Type=notify that runs the installed binary with
# the production config and its EnvironmentFile; a man page in roff with a section for every
# command `mdsync --help` lists (and their subcommands); an example config that the installed
# binary accepts, whose variables the example EnvironmentFile names, and that says which
# variable is missing when one is unset. When systemd-analyze is installed, `systemd-analyze
# verify` must accept the unit without a word; without it that one check is skipped (said so).
#   cmake -DBUILD_DIR=... -DPREFIX=... -P packaging_install.cmake

if(NOT BUILD_DIR OR NOT PREFIX)
  message(FATAL_ERROR "usage: cmake -DBUILD_DIR=build -DPREFIX=/tmp/x -P packaging_install.cmake")
endif()

set(problems "")
macro(problem text)
  string(APPEND problems "  ${text}\n")
endmacro()

file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${out}${err}")
endif()

# Exactly these files.
set(docs share/doc/mdsync)
set(expected
    bin/mdsync
    lib/systemd/system/mdsync.service
    ${docs}/FORMAT.md
    ${docs}/MAPPING.md
    ${docs}/README.md
    ${docs}/examples/mdsync.env.example
    ${docs}/examples/mdsync.production.json
    ${docs}/examples/rules/customer.json
    share/man/man1/mdsync.1)
file(GLOB_RECURSE installed RELATIVE "${PREFIX}" "${PREFIX}/*")
list(SORT installed)
list(SORT expected)
if(NOT installed STREQUAL expected)
  string(REPLACE ";" "\n    " got "${installed}")
  problem("installed files differ from the expected ones; installed:\n    ${got}")
endif()
set(mdsync "${PREFIX}/bin/mdsync")
execute_process(COMMAND "${mdsync}" --version RESULT_VARIABLE rc OUTPUT_VARIABLE version)
if(NOT rc EQUAL 0 OR NOT version MATCHES "^mdsync [0-9]")
  problem("the installed binary does not run: `mdsync --version` gave ${rc}: ${version}")
endif()

# The unit.
set(unit "${PREFIX}/lib/systemd/system/mdsync.service")
file(READ "${unit}" unit_text)
foreach(line
        "Type=notify"
        "ExecStart=${PREFIX}/bin/mdsync run --config /etc/mdsync/mdsync.json"
        "EnvironmentFile=-/etc/mdsync/mdsync.env"
        "User=mdsync"
        "Restart=on-failure"
        "KillSignal=SIGTERM"
        "NoNewPrivileges=yes"
        "ProtectSystem=strict")
  string(FIND "\n${unit_text}" "\n${line}\n" at)
  if(at EQUAL -1)
    problem("the unit lacks the line '${line}'")
  endif()
endforeach()
foreach(key WatchdogSec TimeoutStopSec)
  if(NOT unit_text MATCHES "\n${key}=[0-9]+")
    problem("the unit sets no ${key}")
  endif()
endforeach()

# The man page: roff, with a section for every command the binary lists.
set(man "${PREFIX}/share/man/man1/mdsync.1")
file(READ "${man}" man_text)
foreach(request ".TH MDSYNC 1" ".SH NAME" ".SH SYNOPSIS" ".SH DESCRIPTION" ".SH OPTIONS"
                ".SH COMMANDS" ".SH EXIT STATUS")
  string(FIND "\n${man_text}" "\n${request}" at)
  if(at EQUAL -1)
    problem("the man page has no '${request}'")
  endif()
endforeach()
# The names under "Subcommands:" in `mdsync ARGS... --help`.
function(subcommands_of args out)
  execute_process(COMMAND "${mdsync}" ${args} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mdsync ${args} --help failed (${rc})")
  endif()
  set(names "")
  if(help MATCHES "\nSubcommands:\n(.*)$")
    string(REGEX REPLACE "\n\n.*$" "" list_text "${CMAKE_MATCH_1}")
    string(REGEX MATCHALL "(^|\n)  [a-z][a-z-]*" entries "${list_text}")
    foreach(entry IN LISTS entries)
      string(STRIP "${entry}" entry)
      list(APPEND names "${entry}")
    endforeach()
  endif()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()
subcommands_of("" commands)
list(LENGTH commands command_count)
if(command_count LESS 10)
  problem("mdsync --help lists ${command_count} commands: '${commands}'")
endif()
set(sections 0)
foreach(command IN LISTS commands)
  set(paths "${command}")
  subcommands_of("${command}" subs)
  foreach(sub IN LISTS subs)
    list(APPEND paths "${command} ${sub}")
  endforeach()
  foreach(path IN LISTS paths)
    string(FIND "${man_text}" "\n.SS \"mdsync ${path}\"\n" at)
    if(at EQUAL -1)
      problem("the man page has no section for `mdsync ${path}`")
    endif()
    math(EXPR sections "${sections} + 1")
  endforeach()
endforeach()
message(STATUS "man page: ${sections} command sections checked")

# The example config: accepted by the installed binary with its variables set, each named in the
# example EnvironmentFile, and a missing one named.
set(config "${PREFIX}/${docs}/examples/mdsync.production.json")
file(READ "${config}" config_text)
file(READ "${PREFIX}/${docs}/examples/mdsync.env.example" env_text)
string(REGEX MATCHALL "\\$\\{[A-Z_]+\\}" references "${config_text}")
list(REMOVE_DUPLICATES references)
set(env_args "")
foreach(ref IN LISTS references)
  string(REGEX REPLACE "^\\$\\{(.*)\\}$" "\\1" var "${ref}")
  list(APPEND variables "${var}")
  list(APPEND env_args "${var}=host=db.example.invalid dbname=x")
  if(NOT env_text MATCHES "(^|\n)#?${var}=")
    problem("the example config names \${${var}} but mdsync.env.example does not set it")
  endif()
endforeach()
if(NOT variables)
  problem("the example config takes no DSN from the environment")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env ${env_args}
                        "${mdsync}" rules check --config "${config}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  problem("`mdsync rules check` refuses the example config (${rc}): ${out}${err}")
endif()
list(GET variables 0 missing)
list(REMOVE_AT env_args 0)
execute_process(COMMAND "${CMAKE_COMMAND}" -E env --unset=${missing} ${env_args}
                        "${mdsync}" rules check --config "${config}"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "environment variable ${missing} is not set")
  problem("with ${missing} unset, `rules check` gave ${rc} and: ${err}")
endif()

# systemd's own check of the unit (it also runs `man mdsync`, hence MANPATH).
find_program(SYSTEMD_ANALYZE systemd-analyze)
if(SYSTEMD_ANALYZE)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "MANPATH=${PREFIX}/share/man"
                          "${SYSTEMD_ANALYZE}" verify "${unit}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  # It reports a line it ignores (a misspelt value) on stderr and still exits 0.
  if(NOT rc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
    problem("systemd-analyze verify (${rc}):\n${out}${err}")
  endif()
else()
  message(STATUS "systemd-analyze not found: the unit's `systemd-analyze verify` is skipped")
endif()

if(NOT problems STREQUAL "")
  message(FATAL_ERROR "the installed tree in ${PREFIX}:\n${problems}")
endif()
file(REMOVE_RECURSE "${PREFIX}")
