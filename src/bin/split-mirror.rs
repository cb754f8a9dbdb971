//! `split-mirror check FILE...` and `split-mirror schema`: see `split_mirror::check`;
//! `import`, `promote` and `resume`: see `split_mirror::import`.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::run(std::env::args().skip(1).collect())
}

// The module is built with `--lib`; a wasm build of this command has nothing to do.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use split_mirror::check::{configurations, schema, summary, validate};
    use std::process::ExitCode;

    const USAGE: &str =
        "usage: split-mirror check FILE...   validate configurations as the filter does \
(JSON; YAML with WasmPlugins or Envoy configs)
       split-mirror schema          print the configuration's JSON Schema
       (check - reads stdin)";

    pub fn run(args: Vec<String>) -> ExitCode {
        match args.first().map(String::as_str) {
            Some("check") if args.len() > 1 => check(&args[1..]),
            Some("import") => split_mirror::import::cli::run_import(&args[1..]),
            Some(command @ ("promote" | "resume")) => {
                split_mirror::import::cli::run_edit(command, &args[1..])
            }
            Some("schema") if args.len() == 1 => {
                print!("{}", schema());
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{USAGE}\n{}", split_mirror::import::cli::USAGE);
                ExitCode::from(2)
            }
        }
    }

    /// Exit 0 when every configuration in every file is valid, 1 otherwise.
    fn check(files: &[String]) -> ExitCode {
        let mut all_valid = true;
        for file in files {
            // `-`: stdin, read as YAML (of which JSON is a subset) when it is not JSON.
            let found = split_mirror::import::cli::read_input(file)
                .map_err(|e| e.trim_start_matches(&format!("{file}: ")).to_string())
                .and_then(|text| {
                    let name = if file == "-"
                        && serde_json::from_str::<serde_json::Value>(&text).is_err()
                    {
                        "-.yaml"
                    } else {
                        file.as_str()
                    };
                    configurations(name, &text)
                });
            let found = match found {
                Ok(found) => found,
                Err(message) => {
                    println!("{file}: {message}");
                    all_valid = false;
                    continue;
                }
            };
            for config in found {
                let place = if config.place.is_empty() {
                    file.clone()
                } else {
                    format!("{file}: {}", config.place)
                };
                match validate(&config) {
                    Ok(valid) => print!("{place}: valid\n{}", indent(&summary(&valid))),
                    Err(error) => {
                        println!("{place}: invalid configuration: {error}");
                        all_valid = false;
                    }
                }
            }
        }
        if all_valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }

    fn indent(text: &str) -> String {
        text.lines().map(|line| format!("  {line}\n")).collect()
    }
}
