# Debian's xsimd 8.1 target links "xtl" without depending on xtl-dev, and xsimd's headers need nothing of
# xtl: drop that link so a machine without xtl-dev still links. Used by the build and by the installed
# trellisConfig.cmake alike.
if(TARGET xsimd)
  get_target_property(_trellis_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_trellis_xsimd_links)
    list(REMOVE_ITEM _trellis_xsimd_links xtl)
    set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "${_trellis_xsimd_links}")
  endif()
endif()
