//! `kubeha bundle`: the offline bundle (binaries, images, checksums) for `packages.source: bundle`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::EXIT_INVALID;

#[derive(Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Build a bundle from binaries made by scripts/k8s-binaries.sh, with one image per name
    /// `kubeadm config images list` gives for this inventory
    Build {
        /// Inventory file
        #[arg(
            short = 'f',
            long = "file",
            value_name = "FILE",
            default_value = "cluster.yaml"
        )]
        file: PathBuf,
        /// The binaries directory (the last line scripts/k8s-binaries.sh prints)
        #[arg(long, value_name = "DIR")]
        binaries: PathBuf,
        /// Where the bundle goes (replaced as a whole once it is complete)
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: PathBuf,
    },
    /// Check every file of a bundle against its manifest
    Verify {
        /// The bundle directory
        dir: PathBuf,
    },
}

pub fn run(args: BundleArgs) -> u8 {
    match args.command {
        BundleCommand::Build {
            file,
            binaries,
            out,
        } => {
            let loaded = match crate::cmd_plan::load_inventory(&file) {
                Ok(l) => l,
                Err(code) => return code,
            };
            match plan::load::build_bundle(&loaded.inventory, &binaries, &out) {
                Ok(m) => {
                    for i in &m.images {
                        println!("image  {}  {}", i.name, i.path);
                    }
                    println!(
                        "bundle {} for Kubernetes {}: {} files, checksums in {}/{}",
                        out.display(),
                        m.kubernetes_version,
                        m.files.len(),
                        out.display(),
                        bundle::SUMS
                    );
                    0
                }
                Err(e) => {
                    eprintln!("kubeha bundle build: {e}");
                    EXIT_INVALID
                }
            }
        }
        BundleCommand::Verify { dir } => match bundle::verify(&dir) {
            Ok(m) => {
                println!(
                    "bundle {} (Kubernetes {}): {} files, {} images, every checksum matches",
                    dir.display(),
                    m.kubernetes_version,
                    m.files.len(),
                    m.images.len()
                );
                0
            }
            Err(e) => {
                eprintln!("kubeha bundle verify: {e}");
                1
            }
        },
    }
}
