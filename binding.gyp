# For tools that run `node-gyp rebuild` themselves: featscope's install script (scripts/install.js)
# does not use node-gyp. featscope builds with CMake (libtorch ships CMake config, not gyp), so this
# target hands over to scripts/build-native.js, the one build of record; no second set of flags here.
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
