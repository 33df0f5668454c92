// The value transforms of every mapped field that is not a plain column, built once from the
// config: the engine reads captured values with them and the side store writes with them, so
// both directions use the very same FieldTransform.
#pragma once

#include <map>
#include <string>
#include <tuple>

#include "mdsync/config/config.hpp"
#include "mdsync/mapping/field_transform.hpp"

namespace mdsync::store {

class FieldTransforms {
 public:
  explicit FieldTransforms(const config::Config& config) {
    for (const config::EntityConfig& entity : config.entities)
      for (const config::SideMapping& m : entity.mappings)
        for (const mapping::FieldMapping& fm : m.fields) {
          const auto type = entity.type_of(fm.field);
          // A plain column keeps the engine's own typed conversion and SQL comparison; a
          // jsonb key or a lookup without transforms still gets the identity transform, whose
          // side_holds is the write-back condition for them.
          if (fm.plain() || !type) continue;
          by_field_.emplace(std::make_tuple(entity.name, m.side, fm.field),
                            mapping::FieldTransform(*type, fm));
        }
  }

  // nullptr: the field is a plain column and travels as is.
  const mapping::FieldTransform* find(const std::string& entity, const std::string& side,
                                      const std::string& field) const {
    auto it = by_field_.find(std::make_tuple(entity, side, field));
    return it == by_field_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::tuple<std::string, std::string, std::string>, mapping::FieldTransform> by_field_;
};

}  // namespace mdsync::store
