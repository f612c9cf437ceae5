# node-gyp-build's install flow runs `node-gyp rebuild` when no prebuilt or local addon loads.
# featscope builds with CMake (libtorch ships CMake config, not gyp), so this target hands over
# to scripts/build-native.js, the one build of record; there is no second set of compiler flags here.
{
  "targets": [
    {
      "target_name": "featscope_cmake",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": [],
          "outputs": ["<(module_root_dir)/build/Release/featscope.node"],
          "action": ["node", "<(module_root_dir)/scripts/build-native.js"]
        }
      ]
    }
  ]
}
