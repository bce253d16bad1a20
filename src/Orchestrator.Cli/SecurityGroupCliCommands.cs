// `secgroup …`: a tenant's security groups and their rules (issue 19); `vm create --secgroup G` is in CliSyntax.
using System.CommandLine;
using System.Globalization;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class SecurityGroupCliCommands
{
    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var secgroup = new Command("secgroup",
            "Your security groups: allow rules for traffic into the NICs they are on (without one, a NIC lets in only its own network's guests).");
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "The group's name (a DNS label, unique in your tenant)." };
            var create = new Command("create", "Create a security group (with no rules: it lets nothing more in).") { name };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/secgroups",
                new CreateSecurityGroupRequest(parse.GetValue(name)), ApiRender.SecurityGroups), ct));
            secgroup.Subcommands.Add(create);
        }

        foreach (var (verb, description, method, argument) in new[]
                 {
                     ("list", "List your security groups.", "GET", (string?)null),
                     ("show", "Show one security group and its rules.", "GET", "NAME"),
                     ("delete", "Delete a security group no NIC has and no rule names.", "DELETE", "NAME"),
                 })
        {
            secgroup.Subcommands.Add(NetworkCommands.ByName(actions, client, verb, description, method, argument, "v1/secgroups", ApiRender.SecurityGroups,
                "The security group's name."));
        }

        var rule = new Command("rule", "Add or remove a group's allow rules.");
        {
            var (addTo, bind) = client();
            var group = new Argument<string>("GROUP") { Description = "The security group." };
            var protocol = new Option<string>("--protocol") { Description = "tcp, udp, icmp or any.", Required = true, HelpName = "PROTO" };
            var port = new Option<string>("--port") { Description = "A port or range (tcp and udp): 8080 or 8000-8090.", HelpName = "N[-M]" };
            var cidr = new Option<string>("--remote-cidr") { Description = "Allow from this IPv4 network (default: from anywhere).", HelpName = "CIDR" };
            var remote = new Option<string>("--remote-group") { Description = "Allow from the NICs in this group of yours.", HelpName = "GROUP" };
            var add = new Command("add", "Allow traffic into the group's NICs.") { group, protocol, port, cidr, remote };
            addTo(add);
            add.SetAction((parse, ct) =>
            {
                var (from, to) = Ports(parse.GetValue(port));
                return actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"v1/secgroups/{Uri.EscapeDataString(parse.GetValue(group)!)}/rules",
                    new SecurityRuleRequest(parse.GetValue(protocol), from, to, parse.GetValue(cidr), parse.GetValue(remote)), ApiRender.SecurityGroups), ct);
            });
            rule.Subcommands.Add(add);
        }

        {
            var (addTo, bind) = client();
            var group = new Argument<string>("GROUP") { Description = "The security group." };
            var id = new Argument<string>("RULE") { Description = "The rule's id (secgroup show lists them)." };
            var remove = new Command("remove", "Remove one rule.") { group, id };
            addTo(remove);
            remove.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "DELETE",
                $"v1/secgroups/{Uri.EscapeDataString(parse.GetValue(group)!)}/rules/{Uri.EscapeDataString(parse.GetValue(id)!)}", null, ApiRender.Done), ct));
            rule.Subcommands.Add(remove);
        }

        secgroup.Subcommands.Add(rule);

        {
            var (addTo, bind) = client();
            var vm = new Argument<string>("VM") { Description = "The VM (running or not)." };
            var groups = new Argument<string[]>("GROUP") { Description = "The NIC's groups, replacing its current ones (none: no group).", Arity = ArgumentArity.ZeroOrMore };
            var nic = new Option<int>("--nic") { Description = "Which NIC of the VM (its place among the --network options, from 0).", DefaultValueFactory = _ => 0 };
            var set = new Command("set", "Set the security groups of a VM's NIC; its host applies them at once.") { vm, groups, nic };
            addTo(set);
            set.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "PUT",
                $"v1/vms/{Uri.EscapeDataString(parse.GetValue(vm)!)}/nics/{parse.GetValue(nic).ToString(CultureInfo.InvariantCulture)}/secgroups",
                new NicSecurityGroupsRequest(parse.GetValue(groups) ?? []), ApiRender.Done), ct));
            secgroup.Subcommands.Add(set);
        }

        return secgroup;
    }

    /// <summary>"8080" or "8000-8090" as a range; the API checks the numbers.</summary>
    public static (int? From, int? To) Ports(string? text)
    {
        if (text is null)
        {
            return (null, null);
        }

        var parts = text.Split('-');
        return parts.Length <= 2 && parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            ? (int.Parse(parts[0], CultureInfo.InvariantCulture), parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : null)
            : throw new CliException($"--port: '{text}' is not a port or a range like 8000-8090");
    }
}
