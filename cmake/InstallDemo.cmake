# The local demo, installed with nrf91-sim (NRFGW_INSTALL_SIM=ON, the Debian
# package nrfcloud-gateway-sim): scripts/demo.py and the test fixtures it
# drives (broker, stand-in cloud, simulated BLE devices), laid out as in the
# source tree under ${datadir}/nrfcloud-gateway-sim, with a "build" folder of
# links to the installed programs.  Run it with nrfcloud-gateway-demo.
set(demo_dir ${CMAKE_INSTALL_DATADIR}/nrfcloud-gateway-sim)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/demo.py DESTINATION ${demo_dir}/scripts)
foreach(sub cloud session ble lib fota protocol tools)
  file(GLOB fixtures ${PROJECT_SOURCE_DIR}/tests/${sub}/*.py)
  list(FILTER fixtures EXCLUDE REGEX "/test_[^/]*\\.py$")
  install(FILES ${fixtures} DESTINATION ${demo_dir}/tests/${sub})
endforeach()
foreach(link "firmware_nrf91/nrf91-sim=${CMAKE_INSTALL_FULL_BINDIR}/nrf91-sim"
             "daemon/nrfcloud-gatewayd=${CMAKE_INSTALL_FULL_SBINDIR}/nrfcloud-gatewayd"
             "daemon/tools/nrfcloud-gatewayctl=${CMAKE_INSTALL_FULL_BINDIR}/nrfcloud-gatewayctl")
  string(REPLACE "=" ";" parts "${link}")
  list(GET parts 0 name)
  list(GET parts 1 target)
  install(CODE "
    set(l \"\$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${demo_dir}/build/${name}\")
    get_filename_component(d \"\${l}\" DIRECTORY)
    file(MAKE_DIRECTORY \"\${d}\")
    file(CREATE_LINK \"${target}\" \"\${l}\" SYMBOLIC)
  ")
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/nrfcloud-gateway-demo.in ${PROJECT_BINARY_DIR}/nrfcloud-gateway-demo @ONLY)
install(PROGRAMS ${PROJECT_BINARY_DIR}/nrfcloud-gateway-demo DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/daemon/man/nrf91-sim.1 ${PROJECT_SOURCE_DIR}/daemon/man/nrfcloud-gateway-demo.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
