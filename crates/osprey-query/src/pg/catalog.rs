//! What PostgreSQL clients look up before they query: `information_schema` with
//! PostgreSQL type names, and the functions `current_setting`, `quote_ident`,
//! `parse_ident` and `to_json_text` (how nested columns travel over the wire).

use arrow::array::ArrayBuilder;
use arrow::array::{Array, ArrayRef, Int32Array, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::{exec_err, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// The PostgreSQL name of the type a column of `t` is sent as.
pub fn pg_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Map(..)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_) => "json",
        _ => "text",
    }
}

/// Whether a column of `t` is sent as JSON text (the wire encoder has no map or list types).
pub fn is_nested(t: &DataType) -> bool {
    pg_type_name(t) == "json"
}

/// Replaces DataFusion's `information_schema` (Arrow type names) with one that names
/// PostgreSQL types, listing every table and view registered in `ctx` at this point.
pub async fn install_information_schema(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let mut t_schema = StringBuilder::new();
    let mut t_name = StringBuilder::new();
    let mut t_type = StringBuilder::new();
    let (mut c_schema, mut c_table, mut c_name, mut c_type, mut c_null) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut c_pos = Vec::new();
    let Some(cat) = ctx.catalog(catalog) else {
        return exec_err!("catalog {catalog} is not registered");
    };
    let mut schemas = cat.schema_names();
    schemas.sort();
    for schema_name in schemas {
        if schema_name == "information_schema" {
            continue;
        }
        let Some(schema) = cat.schema(&schema_name) else {
            continue;
        };
        let mut tables = schema.table_names();
        tables.sort();
        for table_name in tables {
            let Some(table) = schema.table(&table_name).await? else {
                continue;
            };
            let kind = match table.table_type() {
                datafusion::datasource::TableType::View => "VIEW",
                _ => "BASE TABLE",
            };
            t_schema.append_value(&schema_name);
            t_name.append_value(&table_name);
            t_type.append_value(kind);
            for (i, f) in table.schema().fields().iter().enumerate() {
                c_schema.append_value(&schema_name);
                c_table.append_value(&table_name);
                c_name.append_value(f.name());
                c_type.append_value(pg_type_name(f.data_type()));
                c_null.append_value(if f.is_nullable() { "YES" } else { "NO" });
                c_pos.push(i as i32 + 1);
            }
        }
    }
    let n_tables = t_name.len();
    let n_cols = c_pos.len();
    let catalog_col = |n: usize| -> ArrayRef { Arc::new(StringArray::from(vec![catalog; n])) };
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let tables_schema = Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("table_type"),
    ]));
    let tables = RecordBatch::try_new(
        tables_schema.clone(),
        vec![
            catalog_col(n_tables),
            Arc::new(t_schema.finish()),
            Arc::new(t_name.finish()),
            Arc::new(t_type.finish()),
        ],
    )?;
    let columns_schema = Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        Field::new("ordinal_position", DataType::Int32, false),
        text("is_nullable"),
        text("data_type"),
        text("udt_name"),
    ]));
    let data_types = c_type.finish();
    let udt: StringArray = data_types
        .iter()
        .map(|t| {
            Some(match t.unwrap_or("text") {
                "double precision" => "float8",
                "bigint" => "int8",
                "integer" => "int4",
                "smallint" => "int2",
                "boolean" => "bool",
                "timestamp with time zone" => "timestamptz",
                "timestamp without time zone" => "timestamp",
                other => other,
            })
        })
        .collect();
    let columns = RecordBatch::try_new(
        columns_schema.clone(),
        vec![
            catalog_col(n_cols),
            Arc::new(c_schema.finish()),
            Arc::new(c_table.finish()),
            Arc::new(c_name.finish()),
            Arc::new(Int32Array::from(c_pos)),
            Arc::new(c_null.finish()),
            Arc::new(data_types),
            Arc::new(udt),
        ],
    )?;
    let info = Arc::new(MemorySchemaProvider::new());
    info.register_table(
        "tables".into(),
        Arc::new(MemTable::try_new(tables_schema, vec![vec![tables]])?),
    )?;
    info.register_table(
        "columns".into(),
        Arc::new(MemTable::try_new(columns_schema, vec![vec![columns]])?),
    )?;
    cat.register_schema("information_schema", info)?;
    Ok(())
}

/// Registers the PostgreSQL functions clients call.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(TextFn::new(
        "current_setting",
        current_setting,
    )));
    ctx.register_udf(ScalarUDF::from(TextFn::new("quote_ident", quote_ident)));
    ctx.register_udf(ScalarUDF::from(ParseIdent::new()));
    ctx.register_udf(ScalarUDF::from(ToJsonText::new()));
}

fn current_setting(name: &str) -> Result<String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "server_version_num" => "160006".into(),
        "server_version" => "16.6".into(),
        "search_path" => "public".into(),
        "timezone" => "UTC".into(),
        "datestyle" => "ISO, MDY".into(),
        "standard_conforming_strings" => "on".into(),
        "client_encoding" | "server_encoding" => "UTF8".into(),
        "default_transaction_read_only" | "transaction_read_only" => "on".into(),
        "max_identifier_length" => "63".into(),
        "integer_datetimes" => "on".into(),
        other => {
            return exec_err!("unrecognized configuration parameter \"{other}\"");
        }
    })
}

fn quote_ident(s: &str) -> Result<String> {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    Ok(if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    })
}

/// `a.b` or `"A".b` → its parts (quotes removed, unquoted parts lower-cased).
fn parse_ident(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.trim().chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c if quoted => cur.push(c),
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(cur);
    parts
}

/// A one-argument text → text function.
#[derive(Debug)]
struct TextFn {
    name: &'static str,
    signature: Signature,
    f: fn(&str) -> Result<String>,
}

// Functions are identified by name (one function per name).
impl PartialEq for TextFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextFn {}

impl std::hash::Hash for TextFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl TextFn {
    fn new(name: &'static str, f: fn(&str) -> Result<String>) -> Self {
        TextFn {
            name,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
            f,
        }
    }
}

fn strings_of(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let a = arg.to_array(rows)?;
    Ok(arrow::compute::cast(&a, &DataType::Utf8)?)
}

impl ScalarUDFImpl for TextFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = strings_of(&args.args[0], args.number_rows)?;
        let input = input
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("not text".into()))?;
        let out: StringArray = input
            .iter()
            .map(|v| v.map(self.f).transpose())
            .collect::<Result<_>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseIdent {
    signature: Signature,
}

impl ParseIdent {
    fn new() -> Self {
        ParseIdent {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ParseIdent {
    fn name(&self) -> &str {
        "parse_ident"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = strings_of(&args.args[0], args.number_rows)?;
        let input = input
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("not text".into()))?;
        let mut b = ListBuilder::new(StringBuilder::new());
        for v in input.iter() {
            match v {
                None => b.append_null(),
                Some(s) => {
                    for p in parse_ident(s) {
                        b.values().append_value(p);
                    }
                    b.append(true);
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `to_json_text(x)`: any value as JSON text (maps as objects, lists as arrays).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToJsonText {
    signature: Signature,
}

impl ToJsonText {
    pub fn new() -> Self {
        ToJsonText {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl Default for ToJsonText {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ToJsonText {
    fn name(&self) -> &str {
        "to_json_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = args.args[0].to_array(args.number_rows)?;
        let out: StringArray = (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| crate::json::value_at(&a, i).to_string()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(quote_ident("spans").ok(), Some("spans".into()));
        assert_eq!(quote_ident("Span Tags").ok(), Some("\"Span Tags\"".into()));
        assert_eq!(parse_ident("ps_trace.span"), vec!["ps_trace", "span"]);
        assert_eq!(parse_ident("\"A.b\".C"), vec!["A.b", "c"]);
        assert!(current_setting("bogus").is_err());
        assert_eq!(pg_type_name(&DataType::Float64), "double precision");
    }
}
