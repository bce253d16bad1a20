// `webhook …` and `rule …`: a tenant's webhooks and automation rules; `vm label`: a VM's labels.
using System.CommandLine;
using System.Globalization;

namespace Orchestrator.Cli;

public static class AutomationCommands
{
    public static IEnumerable<Command> Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        yield return Webhooks(actions, client);
        yield return Rules(actions, client);
    }

    /// <summary><c>vm label NAME KEY=VALUE…</c>: replaces the VM's labels (none given: removes them all).</summary>
    public static Command VmLabel(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var (addTo, bind) = client();
        var name = new Argument<string>("NAME") { Description = "The VM's name." };
        var labels = new Argument<string[]>("LABELS") { Description = "KEY=VALUE pairs; the VM's labels become exactly these.", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("label", "Set a VM's labels (what rules and apply select by).") { name, labels };
        addTo(command);
        command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "PUT",
            $"v1/vms/{Uri.EscapeDataString(parse.GetValue(name)!)}/labels", Pairs(parse.GetValue(labels), "LABELS"), ApiRender.Done), ct));
        return command;
    }

    private static Command Webhooks(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var webhook = new Command("webhook", "Your tenant's webhooks: each event POSTed as JSON, signed with the webhook's secret.");
        {
            var (addTo, bind) = client();
            var url = new Option<string>("--url") { Description = "Where to POST (http or https).", Required = true, HelpName = "URL" };
            var events = new Option<string[]>("--event") { Description = "An event type to send (repeatable; default: all).", HelpName = "TYPE" };
            var create = new Command("create", "Register a webhook. Its signing secret is printed once.") { url, events };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/webhooks",
                new { url = parse.GetValue(url), events = parse.GetValue(events) ?? [] }, ApiRender.CreatedWebhook), ct));
            webhook.Subcommands.Add(create);
        }

        webhook.Subcommands.Add(Simple(actions, client, "list", "List your webhooks (never their secrets).", "GET", _ => "v1/webhooks", ApiRender.Webhooks));
        webhook.Subcommands.Add(Simple(actions, client, "delete", "Delete a webhook.", "DELETE", id => $"v1/webhooks/{id}", ApiRender.Done, "ID"));
        webhook.Subcommands.Add(Simple(actions, client, "deliveries", "Its recent deliveries: status, attempts, last answer.", "GET",
            id => $"v1/webhooks/{id}/deliveries", ApiRender.Deliveries, "ID"));
        return webhook;
    }

    private static Command Rules(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var rule = new Command("rule", "Your tenant's automation rules: on events or on a schedule, stop, start or re-place VMs.");
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "The rule's name (a DNS label)." };
            var on = new Option<string>("--on") { Description = "Event type that triggers it, e.g. VmRestarting.", HelpName = "TYPE" };
            var count = new Option<int>("--count") { Description = "How many such events for one VM.", DefaultValueFactory = _ => 1 };
            var within = new Option<string>("--within") { Description = "…within this long: 90s, 10m, 2h.", DefaultValueFactory = _ => "10m" };
            var schedule = new Option<string>("--schedule") { Description = "Or a cron schedule in UTC, e.g. \"0 20 * * 1-5\".", HelpName = "CRON" };
            var action = new Option<string>("--action") { Description = "stop, start or replace.", Required = true }.AcceptOnlyFromAmong("stop", "start", "replace");
            var selector = new Option<string[]>("--selector") { Description = "KEY=VALUE a VM's labels must have (repeatable).", HelpName = "KEY=VALUE" };
            var create = new Command("create", "Create a rule.") { name, on, count, within, schedule, action, selector };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/rules", new
            {
                name = parse.GetValue(name),
                on = parse.GetValue(on) is { } type ? new { @event = type, count = parse.GetValue(count), within = parse.GetValue(within) } : null,
                schedule = parse.GetValue(schedule),
                action = parse.GetValue(action),
                selector = Pairs(parse.GetValue(selector), "--selector"),
            }, ApiRender.Rules), ct));
            rule.Subcommands.Add(create);
        }

        rule.Subcommands.Add(Simple(actions, client, "list", "List your rules.", "GET", _ => "v1/rules", ApiRender.Rules));
        rule.Subcommands.Add(Simple(actions, client, "delete", "Delete a rule.", "DELETE", id => $"v1/rules/{id}", ApiRender.Done, "ID"));
        return rule;
    }

    internal static Command Simple(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client, string verb,
        string description, string method, Func<string, string> path, ApiRender render, string? argument = null)
    {
        var (addTo, bind) = client();
        var command = new Command(verb, description);
        var id = argument is null ? null : new Argument<string>(argument) { Description = "Its id (see list)." };
        if (id is not null)
        {
            command.Arguments.Add(id);
        }

        addTo(command);
        command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), method,
            path(id is null ? "" : Uri.EscapeDataString(parse.GetValue(id)!)), null, render), ct));
        return command;
    }

    internal static Dictionary<string, string> Pairs(string[]? items, string what)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items ?? [])
        {
            var at = item.IndexOf('=', StringComparison.Ordinal);
            if (at <= 0)
            {
                throw new CliException($"{what}: '{item}' is not KEY=VALUE");
            }

            pairs[item[..at]] = item[(at + 1)..];
        }

        return pairs;
    }
}
