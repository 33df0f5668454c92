// Fields a side has no column for (EntityRules::unmapped): VAT only on the ERP. Nothing is
// ever planned to be written there, a create from that side gives no value for them, and a
// steward cannot take that side's value of them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::state_text;
using test::StateBuilder;
using test::upsert;

constexpr std::int64_t kVersion = 8;

// company: name shared; vat owned by the ERP, which alone has a column for it; note shared and
// mapped only on the ERP too.
EntityRules rules() {
  return RulesBuilder("company")
      .create({"erp", "crm"})
      .field("name", shared_field(OnConflict::kLastWriterWins))
      .field("vat", owned_by("erp"))
      .field("note", shared_field(OnConflict::kLastWriterWins))
      .unmapped("crm", "vat")
      .unmapped("crm", "note")
      .build();
}

std::string writes_text(const std::vector<RowWrite>& writes) {
  std::string s;
  for (const RowWrite& w : writes) {
    s += w.side + " " + to_string(w.kind) + " {" + test::values_text(w.values) + "}";
    if (!w.expected.empty()) s += " expecting {" + test::values_text(w.expected) + "}";
    s += "\n";
  }
  return s;
}

TEST(UnmappedField, AnErpCreateInsertsIntoTheCrmWithoutTheField) {
  RecordState state;
  reconcile_in_place(rules(), kVersion, state,
                     upsert("erp", 1, {{"name", "Acme"}, {"vat", "BE01"}, {"note", "n"}}, 10));
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, {"erp", "crm"}, {}).writes),
            "crm insert {name=\"Acme\"}\n");
}

TEST(UnmappedField, AChangeOfTheFieldIsNeverWrittenWhereItIsUnmapped) {
  RecordState state = StateBuilder()
                          .golden({{"name", "Acme"}, {"vat", "BE01"}, {"note", kNull}})
                          .base("erp", {{"name", "Acme"}, {"vat", "BE01"}, {"note", kNull}})
                          .base("crm", {{"name", "Acme"}})
                          .build();
  reconcile_in_place(rules(), kVersion, state,
                     upsert("erp", 2, {{"vat", "BE02"}, {"note", "x"}}, 20));
  EXPECT_EQ(state.golden.at("vat"), Value{"BE02"});
  // The CRM holds every field it has: nothing to write; the ERP holds the new values.
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, {"erp", "crm"}, {}).writes), "");
  // Even a CRM row whose base knows nothing of vat (it never had the column) plans nothing.
  state.bases["crm"].erase("vat");
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, {"erp", "crm"}, {}).writes), "");
}

TEST(UnmappedField, ACrmCreateGivesNoValueForIt) {
  RecordState state;
  const Plan plan =
      reconcile_in_place(rules(), kVersion, state, upsert("crm", 1, {{"name", "Globex"}}, 10));
  EXPECT_EQ(plan.to_text(),
            "plan company from crm#1 under ruleset v8\n"
            "  name: create golden NULL -> \"Globex\"  [company.name owner=shared "
            "on_conflict=last_writer_wins] created by crm (shared)\n"
            "  vat: create  [company.vat owner=erp on_foreign_write=revert] crm does not map vat; "
            "the default applies\n"
            "  note: create  [company.note owner=shared on_conflict=last_writer_wins] crm does "
            "not map note; the default applies\n");
  EXPECT_EQ(state_text(state),
            "exists=1 deleted=0\n"
            "golden: name=\"Globex\" note=NULL vat=NULL\n"
            "provenance name: crm@10\n"
            "provenance note: @0\n"
            "provenance vat: erp@0\n"
            "base crm: name=\"Globex\"\n");
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, {"erp", "crm"}, {}).writes),
            "erp insert {name=\"Globex\" note=NULL vat=NULL}\n");
  // The ERP's first value of the shared note is then an ordinary change.
  state.bases["erp"] = {{"name", "Globex"}, {"note", kNull}, {"vat", kNull}};
  reconcile_in_place(rules(), kVersion, state, upsert("erp", 2, {{"note", "hello"}}, 20));
  EXPECT_EQ(state.golden.at("note"), Value{"hello"});
}

// A change carrying a field its side has no column for (it cannot, from capture) is not taken.
TEST(UnmappedField, ACrmChangeCarryingItIsIgnored) {
  RecordState state = StateBuilder()
                          .golden({{"name", "Acme"}, {"vat", "BE01"}, {"note", kNull}})
                          .base("erp", {{"name", "Acme"}, {"vat", "BE01"}, {"note", kNull}})
                          .base("crm", {{"name", "Acme"}})
                          .build();
  const Plan plan = reconcile_in_place(rules(), kVersion, state,
                                       upsert("crm", 3, {{"vat", "XX"}, {"note", "y"}}, 30));
  EXPECT_TRUE(plan.decisions.empty()) << plan.to_text();
  EXPECT_EQ(state.golden.at("vat"), Value{"BE01"});
  EXPECT_EQ(state.bases.at("crm").count("vat"), 0u);
}

TEST(UnmappedField, AStewardCannotTakeTheValueOfASideThatDoesNotMapIt) {
  const RecordState state = StateBuilder()
                                .golden({{"name", "Acme"}, {"vat", "BE01"}})
                                .base("erp", {{"name", "Acme"}, {"vat", "BE01"}})
                                .base("crm", {{"name", "Acme"}})
                                .conflict(9, "vat", ConflictKind::kForeignWrite)
                                .build();
  Resolution take;
  take.side = "crm";
  try {
    resolve(rules(), kVersion, state, state.open_conflicts[0], take);
    FAIL() << "taking crm's vat was accepted";
  } catch (const ResolutionError& e) {
    EXPECT_EQ(std::string(e.what()),
              "crm does not map vat (the config gives it no column there); take a side that maps "
              "it, or give --value");
  }
}

}  // namespace
}  // namespace mdsync::core
