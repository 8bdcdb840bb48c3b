"""Guest images: Debian's kernel and BusyBox fetched by package name, and initramfs building."""
