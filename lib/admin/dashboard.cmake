# The web dashboard (`/admin/` on `llm-proxy serve`): the files in
# lib/admin/dashboard/ are compiled into llmproxy_core as byte arrays by
# embed_assets.cmake, regenerated whenever one of them changes.
set(LLM_PROXY_DASHBOARD_FILES index.html app.css app.js favicon.svg)
set(_dashboard_dir ${CMAKE_CURRENT_LIST_DIR}/dashboard)
set(_dashboard_cpp ${CMAKE_BINARY_DIR}/generated/dashboard_assets.cpp)
list(TRANSFORM LLM_PROXY_DASHBOARD_FILES PREPEND ${_dashboard_dir}/ OUTPUT_VARIABLE _dashboard_deps)
list(JOIN LLM_PROXY_DASHBOARD_FILES "|" _dashboard_list)
add_custom_command(
  OUTPUT ${_dashboard_cpp}
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${_dashboard_dir} -DFILES=${_dashboard_list}
          -DOUTPUT=${_dashboard_cpp} -P ${CMAKE_CURRENT_LIST_DIR}/embed_assets.cmake
  DEPENDS ${_dashboard_deps} ${CMAKE_CURRENT_LIST_DIR}/embed_assets.cmake
  COMMENT "Embedding the dashboard (lib/admin/dashboard/)"
  VERBATIM)
target_sources(llmproxy_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dashboard.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../server/dashboard_route.cpp
  ${_dashboard_cpp})
