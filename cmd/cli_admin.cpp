// llm-proxy admin add | list | delete | passwd | set-role
//
// Passwords are read from standard input only (--password-stdin), never from
// the command line, where other users could read them in the process list or
// the shell history; on a terminal the typing is not echoed.
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include "cmd/cli.h"
#include "lib/domain/error.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {
namespace {

struct AdminFlags {
  std::optional<std::string> username;
  std::string role = "admin";
  bool password_stdin = false;
  std::string ref;  // the user a command acts on
};

// Turns terminal echo off for its lifetime (when stdin is a terminal).
class NoEcho {
 public:
  NoEcho() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~NoEcho() {
    if (!active_) return;
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
    std::cerr << "\n";  // the user's Enter was not echoed either
  }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// One line from standard input, without its line ending.
std::string read_password(bool password_stdin) {
  if (!password_stdin)
    throw invalid(
        "give the password on standard input with --password-stdin (never on the command line)");
  if (::isatty(STDIN_FILENO)) std::cerr << "Password: " << std::flush;
  std::string line;
  {
    NoEcho quiet;
    if (!std::getline(std::cin, line)) line.clear();
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw invalid("no password on standard input");
  return line;
}

void print_user(const Context& ctx, const AdminUser& u) {
  if (ctx.json) return print_json(ops::admin_user_json(u));
  print_fields(ops::admin_user_json(u));
}

}  // namespace

void add_admin_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<AdminFlags>();
  CLI::App* group =
      app.add_subcommand("admin", "Manage the users who sign in to the admin API and dashboard");
  group->require_subcommand(1);
  group->footer(
      "\nExamples:\n"
      "  printf '%s\\n' \"$PASSWORD\" | llm-proxy admin add --username alice --password-stdin\n");

  CLI::App* add = add_command(
      group, ctx, "add", "Create an admin user; reads the password from stdin; prints its id",
      "  llm-proxy admin add --username alice --password-stdin < password.txt\n"
      "  printf '%s\\n' \"$PASSWORD\" | llm-proxy admin add --username bob --role viewer "
      "--password-stdin\n",
      [&ctx, f] {
        if (!f->username) throw invalid("--username is required");
        AdminRole role = ops::parse_role(f->role);
        // Checked before the password is read, so a bad name costs no typing.
        ops::check_admin_username(*f->username);
        std::string password = read_password(f->password_stdin);
        AdminUser u = ops::add_admin_user(ctx.store(), *f->username, role, password);
        if (ctx.json) return print_json(ops::admin_user_json(u));
        std::cout << u.id << "\n";
        note("Admin user '" + u.username + "' (" + std::string(to_string(u.role)) + ") created.");
      });
  add_string(add, "--username", f->username, "Sign-in name: 1-64 of A-Z a-z 0-9 . _ @ -");
  add->add_option("--role", f->role,
                  "admin (may change everything, default) or viewer (read-only)");
  add->add_flag("--password-stdin", f->password_stdin,
                "Read the password (at least 12 characters) from the first line of stdin");

  add_command(group, ctx, "list", "List admin users (never their passwords or hashes)",
              "  llm-proxy admin list\n", [&ctx] {
                auto users = ops::list_admin_users(ctx.store());
                if (ctx.json) {
                  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
                  for (const auto& u : users) arr.push_back(ops::admin_user_json(u));
                  return print_json(arr);
                }
                std::vector<std::vector<std::string>> rows;
                for (const auto& u : users) {
                  auto j = ops::admin_user_json(u);
                  rows.push_back({cell(j["id"]), u.username, cell(j["role"]), cell(j["created_at"]),
                                  cell(j["updated_at"])});
                }
                print_table({"ID", "USERNAME", "ROLE", "CREATED", "UPDATED"}, rows);
              });

  CLI::App* remove = add_command(group, ctx, "delete", "Delete an admin user (signs them out)",
                                 "  llm-proxy admin delete alice\n", [&ctx, f] {
                                   ops::remove_admin_user(ctx.store(), f->ref, false);
                                   if (ctx.json) print_json({{"removed", f->ref}});
                                 });
  remove->alias("remove");
  remove->add_option("username", f->ref, "Username")->required();

  CLI::App* passwd = add_command(
      group, ctx, "passwd", "Set a user's password from stdin (signs them out)",
      "  llm-proxy admin passwd alice --password-stdin < new-password.txt\n", [&ctx, f] {
        std::string password = read_password(f->password_stdin);
        print_user(ctx, ops::set_admin_password(ctx.store(), f->ref, password));
      });
  passwd->add_option("username", f->ref, "Username")->required();
  passwd->add_flag("--password-stdin", f->password_stdin,
                   "Read the new password (at least 12 characters) from the first line of stdin");

  CLI::App* set_role = add_command(
      group, ctx, "set-role", "Make a user an admin or a (read-only) viewer",
      "  llm-proxy admin set-role alice viewer\n", [&ctx, f] {
        print_user(ctx, ops::set_admin_role(ctx.store(), f->ref, ops::parse_role(f->role), false));
      });
  set_role->add_option("username", f->ref, "Username")->required();
  set_role->add_option("role", f->role, "admin or viewer")->required();
}

}  // namespace llmproxy::cli
