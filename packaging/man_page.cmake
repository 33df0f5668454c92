# Writes mdsync(1), a roff man page, from the binary's own --help texts: the top-level help and
# every command's, found through the "Subcommands:" lists, so the page says what the binary it
# is installed with says. Run by the build:
#   cmake -DMDSYNC=path/to/mdsync -DOUT=mdsync.1 -P man_page.cmake
# CLI11 prints each option as "  NAME" padded to column 30, then its description (on the next
# line, indented to column 30, when the name does not fit).

if(NOT MDSYNC OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DMDSYNC=path/to/mdsync -DOUT=mdsync.1 -P man_page.cmake")
endif()

# Text for roff: backslashes and hyphens escaped (so options copy as ASCII minus signs), and a
# line that starts with a dot or a quote is not taken for a request.
function(roff text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Within parse_help: the description of the entry in progress, a line of it.
macro(add_description words)
  string(STRIP "${words}" description)
  if(NOT description STREQUAL "")
    roff("${description}" description_roff)
    if(section STREQUAL "Subcommands")
      string(APPEND sub_roff "${description_roff}\n")
    elseif(NOT name STREQUAL "-h,--help")
      string(APPEND body "${description_roff}\n")
    endif()
  endif()
endmacro()

# Runs `mdsync ARGS... --help` and parses it into, in the caller's scope:
#   help_intro        the description above "Usage:" (one paragraph)
#   help_usage        the usage line, without "Usage: "
#   help_roff         the Positionals/Options sections as roff (.TP per entry; -h,--help left out)
#   help_subcommands  the names of the subcommands, a list
#   help_sub_roff     the subcommands with their one-line descriptions, as roff
function(parse_help args)
  execute_process(COMMAND "${MDSYNC}" ${args} --help
                  OUTPUT_VARIABLE text ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mdsync ${args} --help failed (${rc}): ${err}")
  endif()
  set(intro "")
  set(usage "")
  set(section "")
  set(body "")
  set(subs "")
  set(sub_roff "")
  set(heading "")
  # One line at a time (the text holds semicolons, so it is never made a CMake list).
  string(APPEND text "\n")
  while(NOT text STREQUAL "")
    string(FIND "${text}" "\n" end)
    string(SUBSTRING "${text}" 0 ${end} line)
    math(EXPR next "${end} + 1")
    string(SUBSTRING "${text}" ${next} -1 text)
    string(LENGTH "${line}" length)
    if(line MATCHES "^Usage: (.*)$")
      set(usage "${CMAKE_MATCH_1}")
      set(section "usage")
    elseif(line MATCHES "^([A-Z][a-z]+):$")
      set(section "${CMAKE_MATCH_1}")
      # Written before the section's first entry (a group's Options hold only --help).
      set(heading ".PP\n\\fB${section}:\\fR\n")
    elseif(section STREQUAL "")
      if(NOT line STREQUAL "")
        string(APPEND intro "${line}\n")
      endif()
    elseif(line MATCHES "^  [^ ]")
      # A new entry: its name up to column 30, its description after; a name too long for
      # the column fills the line, and its description follows on the next.
      string(SUBSTRING "${text}" 0 31 next_start)
      if(length GREATER 30 AND NOT next_start MATCHES "^ +[^ ]$")
        string(SUBSTRING "${line}" 2 28 name)
        string(SUBSTRING "${line}" 30 -1 description)
      else()
        string(SUBSTRING "${line}" 2 -1 name)
        set(description "")
      endif()
      string(STRIP "${name}" name)
      roff("${name}" name_roff)
      string(REPLACE "," ",\\:" name_roff "${name_roff}")  # a long list of values may break
      if(section STREQUAL "Subcommands")
        list(APPEND subs "${name}")
        string(APPEND sub_roff ".TP\n\\fB${name_roff}\\fR\n")
      elseif(NOT name STREQUAL "-h,--help")
        string(APPEND body "${heading}.TP\n\\fB${name_roff}\\fR\n")
        set(heading "")
      endif()
      add_description("${description}")
    elseif(line MATCHES "^ +[^ ]")
      # The description of an entry whose name filled the line (or a continuation).
      add_description("${line}")
    endif()
  endwhile()
  set(help_intro "${intro}" PARENT_SCOPE)
  set(help_usage "${usage}" PARENT_SCOPE)
  set(help_roff "${body}" PARENT_SCOPE)
  set(help_subcommands "${subs}" PARENT_SCOPE)
  set(help_sub_roff "${sub_roff}" PARENT_SCOPE)
endfunction()

# Appends to `commands_roff` (and `synopsis_roff`, for commands without subcommands) the
# section of `mdsync ARGS...`, then those of its subcommands, depth first.
function(render_command args)
  parse_help("${args}")
  string(REPLACE ";" " " words "${args}")
  roff("${help_intro}" intro)
  roff("${help_usage}" usage)
  string(APPEND commands_roff ".SS \"mdsync ${words}\"\n${intro}.PP\n\\fBUsage:\\fR ${usage}\n")
  string(APPEND commands_roff "${help_roff}")
  if(help_subcommands)
    string(APPEND commands_roff ".PP\n\\fBCommands:\\fR\n${help_sub_roff}")
  endif()
  if(NOT help_subcommands OR NOT help_roff STREQUAL "")
    # A command of its own (`audit` also is one, besides its `audit verify`).
    string(REGEX REPLACE "^mdsync " "" rest "${help_usage}")
    roff("${rest}" rest)
    string(APPEND synopsis_roff ".br\n\\fBmdsync\\fR ${rest}\n")
  endif()
  set(subs "${help_subcommands}")
  foreach(sub IN LISTS subs)
    set(child "${args}")
    list(APPEND child "${sub}")
    render_command("${child}")
  endforeach()
  set(commands_roff "${commands_roff}" PARENT_SCOPE)
  set(synopsis_roff "${synopsis_roff}" PARENT_SCOPE)
endfunction()

execute_process(COMMAND "${MDSYNC}" --version OUTPUT_VARIABLE version RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mdsync --version failed (${rc})")
endif()
roff("${version}" version)

parse_help("")
roff("${help_intro}" description)
set(global_options "${help_roff}")
set(commands "${help_subcommands}")
set(commands_roff "")
set(synopsis_roff "\\fBmdsync\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR ...\n")
foreach(command IN LISTS commands)
  render_command("${command}")
endforeach()

foreach(part synopsis_roff description global_options commands_roff)
  string(STRIP "${${part}}" ${part})
endforeach()
set(MAN_VERSION "${version}")
set(MAN_SYNOPSIS "${synopsis_roff}")
set(MAN_DESCRIPTION "${description}")
set(MAN_OPTIONS "${global_options}")
set(MAN_COMMANDS "${commands_roff}")
configure_file("${CMAKE_CURRENT_LIST_DIR}/mdsync.1.in" "${OUT}.tmp" @ONLY)
file(RENAME "${OUT}.tmp" "${OUT}")
