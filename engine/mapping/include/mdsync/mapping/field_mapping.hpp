// What one canonical field looks like on one side: the column that holds it, and how the
// value is found (one key of a jsonb column), looked up (a foreign key read and written as
// another table's column) and transformed (value map, scale, normalizers). Plain data that
// the config loader fills; FieldTransform gives the transforms their behaviour.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/mapping/normalizer.hpp"

namespace mdsync::mapping {

// The side's column holds a key of another table; the field is that table's `value` column
// (a country_id read and written as the country's code), or the text at `value_path` in it
// when it is a jsonb column of translations (Odoo's res_country.name ->> 'en_US').
struct Lookup {
  std::string schema;  // the lookup table's schema; empty: the mapping's own schema
  std::string table;
  std::string key;    // the lookup table's column that the side's column refers to ("id")
  std::string value;  // the lookup table's column holding the canonical value ("code")
  std::vector<std::string> value_path = {};  // object keys into `value`; empty: the column itself
  // Lookup-table column -> another field of the same row: a value names a lookup row only
  // together with that field's side column (a state's code within the row's country_id).
  std::vector<std::pair<std::string, std::string>> within = {};
};

struct FieldMapping {
  std::string field;
  std::string column;
  // Object keys into a jsonb column; empty: the column itself holds the value. Writing one
  // path must leave every other key of the object as it is.
  std::vector<std::string> json_path = {};
  std::optional<Lookup> lookup = std::nullopt;
  // Canonical value -> side value, one-to-one; canonical values in the field type's canonical
  // form. Empty: no value map.
  std::vector<std::pair<std::string, std::string>> value_map = {};
  // The side holds whole units of 10^-scale canonical units (6: micros).
  std::optional<int> scale = std::nullopt;
  std::vector<Normalizer> normalize = {};  // applied in order to the side's text
  // How a value is spelled when written ("https://{value}"): `{value}` stands for the
  // normalized text; what it makes must normalize back to it. Empty: the normalized text.
  std::string write_as = {};

  // True when the value travels unchanged between the column and the field.
  bool plain() const {
    return json_path.empty() && !lookup && value_map.empty() && !scale && normalize.empty();
  }
  // True when the value itself is rewritten on the way (map, scale, normalizers); json_path
  // and lookup only say where the value is.
  bool transforms() const { return !value_map.empty() || scale || !normalize.empty(); }
};

}  // namespace mdsync::mapping
