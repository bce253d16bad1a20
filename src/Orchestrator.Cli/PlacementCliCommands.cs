// `host label|unlabel` (admin keys), `group …` (a tenant's server groups), and the placement options of `vm create`.
using System.CommandLine;

namespace Orchestrator.Cli;

public static class PlacementCliCommands
{
    /// <summary>Adds --host-label and --group to <c>vm create</c>.</summary>
    public static (Option<string[]> HostSelector, Option<string> Group) VmOptions(Command create)
    {
        var hostSelector = new Option<string[]>("--host-label")
        {
            Description = "Run it only on hosts whose labels match: KEY=VALUE, KEY!=VALUE, KEY (has it) or !KEY (lacks it); repeatable, all must hold.",
            HelpName = "SELECTOR",
        };
        var group = new Option<string>("--group") { Description = "Put it in one of your server groups (see `group create`).", HelpName = "GROUP" };
        create.Options.Add(hostSelector);
        create.Options.Add(group);
        return (hostSelector, group);
    }

    public static void AddHostLabels(Command host, ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        {
            var (addTo, bind) = client();
            var id = new Argument<string>("id") { Description = "The host's id (see `host list`)." };
            var labels = new Argument<string[]>("KEY=VALUE") { Description = "Labels to set.", Arity = ArgumentArity.OneOrMore };
            var label = new Command("label", "Set labels on a host (admin); VMs select hosts by them (vm create --host-label).") { id, labels };
            addTo(label);
            label.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"v1/hosts/{Uri.EscapeDataString(parse.GetValue(id)!)}/labels",
                new { set = AutomationCommands.Pairs(parse.GetValue(labels), "label"), remove = Array.Empty<string>() }, ApiRender.HostLabels), ct));
            host.Subcommands.Add(label);
        }

        {
            var (addTo, bind) = client();
            var id = new Argument<string>("id") { Description = "The host's id (see `host list`)." };
            var keys = new Argument<string[]>("KEY") { Description = "Label keys to remove.", Arity = ArgumentArity.OneOrMore };
            var unlabel = new Command("unlabel", "Remove labels from a host (admin); VMs already there stay.") { id, keys };
            addTo(unlabel);
            unlabel.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"v1/hosts/{Uri.EscapeDataString(parse.GetValue(id)!)}/labels",
                new { set = new Dictionary<string, string>(), remove = parse.GetValue(keys) }, ApiRender.HostLabels), ct));
            host.Subcommands.Add(unlabel);
        }
    }

    public static Command Group(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var group = new Command("group", "Server groups: keep your VMs apart (anti-affinity) or together (affinity).");
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "The group's name (a DNS label)." };
            var policy = new Option<string>("--policy")
            {
                Description = "anti-affinity and affinity are hard (a VM waits Pending rather than break them); the soft- ones only prefer.",
                Required = true,
            }.AcceptOnlyFromAmong("anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity");
            var create = new Command("create", "Create a server group; put VMs in it with vm create --group.") { name, policy };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/groups",
                new { name = parse.GetValue(name), policy = parse.GetValue(policy) }, ApiRender.Groups), ct));
            group.Subcommands.Add(create);
        }

        group.Subcommands.Add(AutomationCommands.Simple(actions, client, "list", "List your server groups with their members.", "GET", _ => "v1/groups",
            ApiRender.Groups));
        group.Subcommands.Add(AutomationCommands.Simple(actions, client, "show", "Show a server group with its members.", "GET",
            name => $"v1/groups/{name}", ApiRender.Groups, "NAME"));
        group.Subcommands.Add(AutomationCommands.Simple(actions, client, "delete", "Delete a server group that has no members.", "DELETE",
            name => $"v1/groups/{name}", ApiRender.Done, "NAME"));
        return group;
    }
}
