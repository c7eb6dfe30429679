#!/usr/bin/env bash
# System packages for the browser / GPU tests (Debian 12):
#   chromium  headless Chromium for test/browser (playwright-core drives /usr/bin/chromium),
#             and its SwiftShader Vulkan driver (/usr/lib/chromium/vk_swiftshader_icd.json),
#             the only adapter the `webgpu` npm package accepts on a machine without a GPU
#             (test/webgpu sets VK_ICD_FILENAMES to it when unset).
#   mesa-vulkan-drivers  lavapipe, the CPU Vulkan driver Deno's WebGPU (wgpu) finds on a
#             machine without a GPU: the WebGPU tests under Deno run on it.
# Idempotent; a no-op when chromium is already installed. Needs root (or sudo).
# Without it those tests skip with a printed reason; everything else runs.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ] && ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  echo "install-system: chromium and lavapipe already installed ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "install-system: need root or sudo for apt-get" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium mesa-vulkan-drivers >/dev/null
echo "install-system: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
