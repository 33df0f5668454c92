# shellcheck shell=bash
# The entity tools/bench-sync measures: a 20-field customer (text, money, integers, a date, a
# boolean, a timestamptz; the ERP owns 12 fields, the CRM 6, 2 are shared), its tables, seed
# rows, mdsync config and rules, the mixed workload, and the SQL that checks a run converged.
# Source it; every function prints SQL or JSON (or runs nothing), so the bench can send the
# same text to mdsync's sides and to the logical-replication baseline.
#
#   bench_fields                       the 20 field names, comma-separated, in table order
#   bench_side_ddl SCHEMA TABLE KEYDEF the side table (KEYDEF: "id serial" or "id uuid ...")
#   bench_gen_select PREFIX            select list of one generated row from the integer `i`
#   bench_seed_sql N                   ERP and CRM seed statements (2 lines: erp, crm)
#   bench_config_json CTL ERP CRM BATCH POLL_MS [NOTIFY]  mdsync.json for the three databases
#                                      (NOTIFY: the sides' `notify`, true or false; omitted: the
#                                      engine's default)
#   bench_rules_json                   rules/customer.json
#   bench_workload_plan N C            "eu cu pairs ins_e ins_c dels" for C changes over N rows
#   bench_workload_sql SIDE PLAN R     a DO block: SIDE's (erp|crm) share of the workload,
#                                      committed R row changes per transaction
#   bench_snap_ddl                     the check database's snapshot table and helpers
#   bench_golden_select TAG            the control store's golden records as snapshot rows
#   bench_side_select TAG SCHEMA TABLE a side's rows as snapshot rows
#   bench_merge_select [base]          the select list that merges an ERP and a CRM row
#   bench_expected_sql                 (re)computes table `expected` from the snapshots
#                                      erp_pre, crm_pre and base (see the function)

if [[ -n "${_MDSYNC_BENCH_ENTITY_SH:-}" ]]; then
    return 0
fi
_MDSYNC_BENCH_ENTITY_SH=1

# field -> SQL type on the sides (and in the check database), in table order.
_bench_erp_owned=(customer_no name street city zip country credit_limit payment_terms vat_no
    currency customer_since blocked)
_bench_crm_owned=(email phone website industry employees last_contact)
_bench_shared=(segment annual_revenue)
declare -gA _bench_sqltype=(
    [customer_no]=text [name]=text [street]=text [city]=text [zip]=text [country]=text
    [credit_limit]="numeric(14,2)" [payment_terms]=integer [vat_no]=text [currency]=text
    [customer_since]=date [blocked]=boolean
    [email]=text [phone]=text [website]=text [industry]=text [employees]=integer
    [last_contact]=timestamptz
    [segment]=text [annual_revenue]="numeric(16,2)"
)
declare -gA _bench_cfgtype=(
    [text]=text ["numeric(14,2)"]=numeric ["numeric(16,2)"]=numeric [integer]=integer
    [date]=date [boolean]=boolean [timestamptz]=timestamptz
)

_bench_all_fields() { printf '%s\n' "${_bench_erp_owned[@]}" "${_bench_crm_owned[@]}" "${_bench_shared[@]}"; }
bench_fields() { _bench_all_fields | paste -sd, -; }

bench_side_ddl() {
    local schema="$1" table="$2" keydef="$3" f cols=""
    while read -r f; do cols+=", $f ${_bench_sqltype[$f]}"; done < <(_bench_all_fields)
    printf 'CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE %s.%s (%s PRIMARY KEY%s);
CREATE INDEX ON %s.%s (customer_no);\n' "$schema" "$schema" "$table" "$keydef" "$cols" "$schema" "$table"
}

# One generated row from the integer i, one expression per line in field order: every type,
# some NULLs, microsecond timestamps.
_bench_gen_exprs() {
    local p="$1"
    cat <<SQL
'$p' || i
'Customer ' || i || ' ' || md5(i::text)
(i % 997) || ' Main Street'
'City ' || (i % 97)
lpad((1000 + i % 9000)::text, 4, '0')
(ARRAY['BE','NL','DE','FR','LU'])[1 + i % 5]
(1000 + (i % 500000) / 100.0)::numeric(14,2)
(ARRAY[0, 14, 30, 60])[1 + i % 4]
CASE WHEN i % 7 = 0 THEN NULL ELSE 'BE0' || lpad(i::text, 9, '0') END
(ARRAY['EUR','USD','GBP'])[1 + i % 3]
date '2000-01-01' + (i % 8000)
i % 50 = 0
'c' || i || '@example.com'
'+32 2 ' || lpad(i::text, 7, '0')
CASE WHEN i % 11 = 0 THEN NULL ELSE 'https://c' || i || '.example.com' END
(ARRAY['retail','manufacturing','services','public'])[1 + i % 4]
10 + i % 990
timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' + (i % 1000) * interval '1 microsecond'
(ARRAY['smb','enterprise','public'])[1 + i % 3]
(100000 + (i * 17) % 1000000)::numeric(16,2)
SQL
}
bench_gen_select() { _bench_gen_exprs "$1" | awk 'NR > 1 { printf ", " } { printf "%s", $0 } END { print "" }'; }

# ERP: C-1..C-N. CRM: C-1..C-M (M = 90% of N, matching by customer number) and X-1..X-(N-M)
# (CRM only). Every 10th matching row differs in one field on the CRM, in turn an ERP-owned
# text (city), an ERP-owned amount, a CRM-owned text (email), a CRM-owned integer.
bench_seed_sql() {
    local n="$1" m=$(($1 * 9 / 10)) f outer="" aliased
    while read -r f; do
        case "$f" in
        city) outer+=", CASE WHEN d = 0 THEN city || ' (crm)' ELSE city END" ;;
        credit_limit) outer+=", CASE WHEN d = 1 THEN credit_limit + 1 ELSE credit_limit END" ;;
        email) outer+=", CASE WHEN d = 2 THEN 'crm.' || email ELSE email END" ;;
        employees) outer+=", CASE WHEN d = 3 THEN employees + 1 ELSE employees END" ;;
        *) outer+=", $f" ;;
        esac
    done < <(_bench_all_fields)
    aliased="$(paste -d'|' <(_bench_gen_exprs C-) <(_bench_all_fields) | sed 's/|\([a-z_]*\)$/ AS \1/' |
        awk 'NR > 1 { printf ", " } { printf "%s", $0 } END { print "" }')"
    printf 'INSERT INTO erp.customer (%s) SELECT %s FROM generate_series(1, %d) i\n' \
        "$(bench_fields)" "$(bench_gen_select C-)" "$n"
    printf 'INSERT INTO crm.account (%s) SELECT %s FROM (SELECT CASE WHEN i %% 10 = 0 THEN (i / 10) %% 4 END AS d, %s FROM generate_series(1, %d) i) g; INSERT INTO crm.account (%s) SELECT %s FROM generate_series(1, %d) i\n' \
        "$(bench_fields)" "${outer#, }" "$aliased" "$m" "$(bench_fields)" "$(bench_gen_select X-)" "$((n - m))"
}

bench_config_json() {
    local ctl="$1" erp="$2" crm="$3" batch="$4" poll="$5" notify="" f fields="" cols=""
    [[ -z "${6:-}" ]] || notify=", \"notify\": $6"
    while read -r f; do
        fields+="\"$f\": \"${_bench_cfgtype[${_bench_sqltype[$f]}]}\", "
        cols+="\"$f\": \"$f\", "
    done < <(_bench_all_fields)
    cat <<JSON
{
  "control": "host='\${MDSYNC_DEMO_PGHOST}' port=\${MDSYNC_DEMO_PGPORT} user=postgres dbname=$ctl",
  "rules": "rules",
  "sides": {
    "erp": { "dsn": "host='\${MDSYNC_DEMO_PGHOST}' port=\${MDSYNC_DEMO_PGPORT} user=postgres dbname=$erp"$notify },
    "crm": { "dsn": "host='\${MDSYNC_DEMO_PGHOST}' port=\${MDSYNC_DEMO_PGPORT} user=postgres dbname=$crm"$notify }
  },
  "entities": {
    "customer": {
      "fields": { ${fields%, } },
      "match": { "keys": [ { "field": "customer_no", "normalize": ["trim"] } ] },
      "sides": {
        "erp": { "schema": "erp", "table": "customer", "key": "id", "columns": { ${cols%, } } },
        "crm": { "schema": "crm", "table": "account", "key": "id", "columns": { ${cols%, } } }
      }
    }
  },
  "service": { "poll_interval_ms": $poll, "batch_size": $batch }
}
JSON
}

# The ERP owns its 12 fields, the CRM its 6; both may create, and a create seeds every field
# from the creating side (on_create accept), so a CRM prospect keeps its name and number; the
# ERP's delete is authoritative and propagates.
bench_rules_json() {
    local f fields=""
    for f in "${_bench_crm_owned[@]}"; do
        fields+="    \"$f\": { \"owner\": \"crm\", \"on_foreign_write\": \"revert\", \"on_create\": \"accept\" },"$'\n'
    done
    for f in "${_bench_shared[@]}"; do
        fields+="    \"$f\": { \"owner\": \"shared\", \"on_conflict\": \"last_writer_wins\" },"$'\n'
    done
    cat <<JSON
{
  "entity": "customer",
  "priority": ["erp", "crm"],
  "create": ["erp", "crm"],
  "delete": { "owner": "erp", "propagate": "delete" },
  "default": { "owner": "erp", "on_foreign_write": "revert", "on_create": "accept" },
  "fields": {
${fields%,$'\n'}
  }
}
JSON
}

# C changes over the rows C-1..C-N: 5% are concurrent edits of a shared field (pairs, one
# change on each side), 10% inserts (half on each side), 1% ERP deletes, the rest updates of
# owned fields, half on each side. Each touches its own rows.
bench_workload_plan() {
    local n="$1" c="$2" pairs ins dels rest eu
    pairs=$((c * 5 / 200))
    ins=$((c / 10))
    dels=$((c / 100 > 0 ? c / 100 : 1))
    rest=$((c - 2 * pairs - ins - dels))
    ((rest >= 0)) || rest=0
    eu=$((rest / 2))
    if ((eu + (rest - eu) + pairs + dels > n)); then
        echo "bench_workload_plan: $c changes need more than $n rows" >&2
        return 1
    fi
    echo "$eu $((rest - eu)) $pairs $((ins / 2)) $((ins - ins / 2)) $dels"
}

# SIDE's share of the workload, in one DO block that commits every R row changes. The ERP
# runs first, then the CRM, so in each concurrent pair the CRM's edit is the later one.
bench_workload_sql() {
    local side="$1" r="$3" eu cu pairs ie ic dels
    read -r eu cu pairs ie ic dels <<<"$2"
    local commit="k := k + 1; IF k % $r = 0 THEN COMMIT; END IF;"
    local p0=$((eu + cu)) d0=$((eu + cu + pairs))
    if [[ "$side" == erp ]]; then
        cat <<SQL
DO \$\$ DECLARE k bigint := 0; BEGIN
  FOR i IN 1..$eu LOOP
    CASE i % 4
      WHEN 0 THEN UPDATE erp.customer SET credit_limit = credit_limit + 1 WHERE customer_no = 'C-' || i;
      WHEN 1 THEN UPDATE erp.customer SET city = city || '+', zip = lpad(((zip::int + 1) % 10000)::text, 4, '0') WHERE customer_no = 'C-' || i;
      WHEN 2 THEN UPDATE erp.customer SET payment_terms = payment_terms + 1 WHERE customer_no = 'C-' || i;
      ELSE UPDATE erp.customer SET blocked = NOT blocked, customer_since = customer_since + 1 WHERE customer_no = 'C-' || i;
    END CASE;
    $commit
  END LOOP;
  FOR i IN $((p0 + 1))..$((p0 + pairs)) LOOP
    UPDATE erp.customer SET segment = 'key-account' WHERE customer_no = 'C-' || i; $commit
  END LOOP;
  FOR i IN 1..$ie LOOP
    INSERT INTO erp.customer ($(bench_fields)) SELECT $(bench_gen_select NE-); $commit
  END LOOP;
  FOR i IN $((d0 + 1))..$((d0 + dels)) LOOP
    DELETE FROM erp.customer WHERE customer_no = 'C-' || i; $commit
  END LOOP;
END \$\$
SQL
    else
        cat <<SQL
DO \$\$ DECLARE k bigint := 0; BEGIN
  FOR i IN $((eu + 1))..$((eu + cu)) LOOP
    CASE i % 4
      WHEN 0 THEN UPDATE crm.account SET email = 'new.' || email WHERE customer_no = 'C-' || i;
      WHEN 1 THEN UPDATE crm.account SET phone = phone || '0' WHERE customer_no = 'C-' || i;
      WHEN 2 THEN UPDATE crm.account SET employees = employees + 1 WHERE customer_no = 'C-' || i;
      ELSE UPDATE crm.account SET last_contact = last_contact + interval '1 hour 0.000001 second' WHERE customer_no = 'C-' || i;
    END CASE;
    $commit
  END LOOP;
  FOR i IN $((p0 + 1))..$((p0 + pairs)) LOOP
    UPDATE crm.account SET segment = 'strategic' WHERE customer_no = 'C-' || i; $commit
  END LOOP;
  FOR i IN 1..$ic LOOP
    INSERT INTO crm.account ($(bench_fields)) SELECT $(bench_gen_select NC-); $commit
  END LOOP;
END \$\$
SQL
    fi
}

bench_snap_ddl() {
    local f cols=""
    while read -r f; do cols+=", $f ${_bench_sqltype[$f]%(*}"; done < <(_bench_all_fields)
    echo "CREATE TABLE snap (tag text NOT NULL$cols); CREATE INDEX ON snap (tag, customer_no);"
}

bench_side_select() {
    echo "SELECT '$1', $(bench_fields) FROM $2.$3"
}

bench_golden_select() {
    local f sel=""
    while read -r f; do sel+=", \"values\" ->> '$f'"; done < <(_bench_all_fields)
    echo "SELECT '$1'$sel FROM mdsync.golden WHERE entity = 'customer' AND NOT deleted"
}

# What the sides must hold after a run, from what each side held before it (erp_pre, crm_pre:
# after the workload, before mdsync ran) and what both held before the workload (base; empty
# for the initial sync): an owned field is its owner's value, or the creating side's for a
# record only one side has; a shared field is the CRM's where the CRM changed it (its edit is
# the later one), else the ERP's; a record the ERP deleted is gone.
# bench_merge_select [base]: that rule as a select list over rows e (ERP), c (CRM) and, with
# `base`, b (both before the workload; without it, as for an initial sync: no base).
bench_merge_select() {
    local f sel="" changed="e.customer_no IS NULL"
    for f in "${_bench_erp_owned[@]}"; do
        sel+=", CASE WHEN e.customer_no IS NOT NULL THEN e.$f ELSE c.$f END AS $f"
    done
    for f in "${_bench_crm_owned[@]}"; do
        sel+=", CASE WHEN c.customer_no IS NOT NULL THEN c.$f ELSE e.$f END AS $f"
    done
    for f in "${_bench_shared[@]}"; do
        [[ "${1:-}" != base ]] || changed="e.customer_no IS NULL OR b.customer_no IS NULL OR c.$f IS DISTINCT FROM b.$f"
        [[ "${1:-}" == base ]] || changed="true"
        sel+=", CASE WHEN c.customer_no IS NOT NULL AND ($changed) THEN c.$f ELSE e.$f END AS $f"
    done
    echo "${sel#, }"
}

bench_expected_sql() {
    cat <<SQL
DROP TABLE IF EXISTS expected;
CREATE TABLE expected AS SELECT $(bench_merge_select base)
  FROM (SELECT * FROM snap WHERE tag = 'erp_pre') e
  FULL JOIN (SELECT * FROM snap WHERE tag = 'crm_pre') c ON c.customer_no = e.customer_no
  LEFT JOIN (SELECT * FROM snap WHERE tag = 'base') b ON b.customer_no = coalesce(e.customer_no, c.customer_no)
  WHERE b.customer_no IS NULL OR (e.customer_no IS NOT NULL AND c.customer_no IS NOT NULL);
SQL
}
