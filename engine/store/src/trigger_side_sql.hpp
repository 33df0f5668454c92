// SQL pieces that several of the trigger side's files share: a table's quoted name and column
// types, how a mapped field is read (a jsonb path, a lookup's table and value) and what
// capture records of it, the columns the capture trigger reads and which of them are gone.
// Identifiers are quoted and literals escaped here, never spliced.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/side.hpp"
#include "side_table_sql.hpp"

namespace pqxx {
class connection_base;
class field;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

// The first line of a server message (no CONTEXT or DETAIL lines).
std::string first_line(const std::string& s);

// "schema"."table" of the mapping's table.
std::string table_name(pqxx::connection_base& c, const config::SideMapping& m);
// The table's columns and types. A table that is gone yields no types rather than an error
// that would abort the side transaction; its writes then take the row-by-row path and fail
// one by one.
ColumnTypes column_types(pqxx::transaction_base& tx, const std::string& table);
// The entity's mapping on `side`; throws when it has none.
const config::SideMapping& mapping_of(const config::EntityConfig& entity, const std::string& side);

// A json_path as a text[] literal of quoted elements, never spliced text.
std::string path_array(pqxx::connection_base& c, const std::vector<std::string>& path);
// ["en_US"], for messages.
std::string path_array_text(const std::vector<std::string>& path);
// The lookup's table, quoted ("erp"."res_country").
std::string lookup_table(pqxx::connection_base& c, const config::SideMapping& m,
                         const mapping::Lookup& l);
// The looked-up value of lookup row `alias` as text: its column, or the text at its
// value_path when the column holds translations ({"en_US": "Belgium"}).
std::string lookup_value(pqxx::connection_base& c, const mapping::Lookup& l,
                         const std::string& alias);
// "erp.res_country", for messages.
std::string lookup_name(const config::SideMapping& m, const mapping::Lookup& l);

// What a capture trigger records for a field of row `row` (NEW or OLD): the column (a zoned
// timestamp as the instant it means), or the text at a jsonb path. A lookup field records the
// foreign key itself; read_capture looks it up, so the trigger stays one column read and an
// unknown key can be reported.
std::string captured_expr(pqxx::connection_base& c, const SideTableSql& sql,
                          const mapping::FieldMapping& fm, const std::string& row);
// Every field of row `row` as the jsonb object a capture row holds. jsonb_build_object takes
// at most 100 arguments: built in chunks of 50 fields.
std::string full_row_expr(pqxx::connection_base& c, const SideTableSql& sql,
                          const std::string& row);
// One (key, value) row of jsonb_each_text over a captured row's fields; a capture without
// fields (a delete) has a NULL key.
void add_field(CapturedRow& row, const pqxx::field& key, const pqxx::field& value);

// The columns a capture row cannot be made without: the key, the scope's and the soft
// delete's. Without one of them the trigger captures nothing (and the side's write goes on).
std::vector<std::string> structural_columns(const config::SideMapping& m);
// Every column the capture trigger reads, once each.
std::vector<std::string> read_columns(const config::SideMapping& m);
// The columns the capture trigger reads (key, scope, soft delete, mapped fields) that the
// side's table no longer has. Empty when the table itself is gone: that is not drift of a
// column, and every write to it fails with the side's own error.
std::set<std::string> drifted_columns(pqxx::transaction_base& tx, const config::SideMapping& m);
// The same, from the table's columns as column_types read them.
std::set<std::string> drifted_columns(const ColumnTypes& types, const config::SideMapping& m);

}  // namespace mdsync::store
