// `tenant …`: the operator's commands for tenants, their quotas and their API keys (admin keys), and `tenant show`
// for any key's own tenant.
using System.CommandLine;
using System.Globalization;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

/// <summary>How the answer of a plain API call is shown as a table.</summary>
public enum ApiRender
{
    Tenants,
    Tenant,
    IssuedKey,
    Revoked,
    Webhooks,
    CreatedWebhook,
    Deliveries,
    Rules,
    Done,
    Groups,
    HostLabels,
    Networks,
    Volumes,
    Snapshots,
    SecurityGroups,
    Forwards,
    Images,
}

/// <summary>One API call and how to show its answer; <see cref="Before"/> reads the current state first (for merges).</summary>
public sealed record ApiCallArgs(ClientArgs Client, string Method, string Path, object? Body, ApiRender Render, TenantQuotaChange? Before = null);

/// <summary>
/// A quota change typed on the command line: null leaves a limit as it is, <see cref="Unlimited"/> removes it. The
/// API replaces the quota whole, so the client reads the tenant first and merges.
/// </summary>
public sealed record TenantQuotaChange(long? Vms, long? Vcpus, long? MemoryMiB, bool? Disabled,
    long? PoolShares = null, long? PoolReservationMillicores = null, long? PoolLimitMillicores = null, long? StorageGiB = null,
    long? Snapshots = null, long? Volumes = null, long? Networks = null, long? Addresses = null, string? ForwardPorts = null)
{
    public const long Unlimited = -1;

    private bool ChangesPool => PoolShares is not null || PoolReservationMillicores is not null || PoolLimitMillicores is not null;

    public object Merge(TenantDto current)
    {
        var quota = new Dictionary<string, object?>
        {
            ["vms"] = Pick(Vms, current.Quota.Vms),
            ["vcpus"] = Pick(Vcpus, current.Quota.Vcpus),
            ["memoryMiB"] = Pick(MemoryMiB, current.Quota.MemoryMiB),
            ["storageGiB"] = Pick(StorageGiB, current.Quota.StorageGiB),
            ["snapshots"] = Pick(Snapshots, current.Quota.Snapshots),
            ["volumes"] = Pick(Volumes, current.Quota.Volumes),
            ["networks"] = Pick(Networks, current.Quota.Networks),
            ["addresses"] = Pick(Addresses, current.Quota.Addresses),
        };
        // Forward ports are left out of the body when there are none (the API replaces the quota whole: none granted).
        if ((ForwardPorts switch { null => current.Quota.ForwardPorts, "none" => null, var ports => ports }) is { } forwardPorts)
        {
            quota["forwardPorts"] = forwardPorts;
        }

        return new
        {
            quota,
            disabled = Disabled,
            pool = ChangesPool
                ? new
                {
                    cpuShares = Pick(PoolShares, current.Pool?.CpuShares),
                    cpuReservationMillicores = Pick(PoolReservationMillicores, current.Pool?.CpuReservationMillicores) ?? 0,
                    cpuLimitMillicores = Pick(PoolLimitMillicores, current.Pool?.CpuLimitMillicores),
                }
                : null,
        };
    }

    private static long? Pick(long? typed, long? current) => typed switch
    {
        null => current,
        Unlimited => null,
        var value => value,
    };
}

public static class TenantCommands
{
    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<System.CommandLine.ParseResult, ClientArgs> Bind)> client)
    {
        var tenant = new Command("tenant", "Tenants, their quotas and API keys (admin keys), or your own tenant.");

        {
            var (addTo, bind) = client();
            var id = new Argument<string>("ID") { Description = "The new tenant's id (a DNS label)." };
            var (vms, vcpus, memory) = QuotaOptions(allowNone: false);
            var storage = StorageOption(allowNone: false);
            var (snapshots, volumes, networks, addresses) = CountOptions(allowNone: false);
            var create = new Command("create", "Create a tenant, optionally with a quota.")
            {
                id, vms, vcpus, memory, storage, snapshots, volumes, networks, addresses,
            };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/tenants",
                new
                {
                    id = parse.GetValue(id),
                    quota = new
                    {
                        vms = Limit(parse, vms), vcpus = Limit(parse, vcpus), memoryMiB = Limit(parse, memory), storageGiB = Limit(parse, storage),
                        snapshots = Limit(parse, snapshots), volumes = Limit(parse, volumes), networks = Limit(parse, networks),
                        addresses = Limit(parse, addresses),
                    },
                }, ApiRender.Tenant), ct));
            tenant.Subcommands.Add(create);
        }

        {
            var (addTo, bind) = client();
            var list = new Command("list", "List the tenants with their quotas and usage.");
            addTo(list);
            list.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "GET", "v1/tenants", null, ApiRender.Tenants), ct));
            tenant.Subcommands.Add(list);
        }

        {
            var (addTo, bind) = client();
            var id = new Argument<string?>("ID") { Description = "The tenant (admin keys); your key's own tenant when left out.", Arity = ArgumentArity.ZeroOrOne };
            var show = new Command("show", "Show a tenant: quota, usage and keys.") { id };
            addTo(show);
            show.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "GET",
                parse.GetValue(id) is { } named ? $"v1/tenants/{Uri.EscapeDataString(named)}" : "v1/tenant", null, ApiRender.Tenant), ct));
            tenant.Subcommands.Add(show);
        }

        {
            var (addTo, bind) = client();
            var id = new Argument<string>("ID") { Description = "The tenant." };
            var (vms, vcpus, memory) = QuotaOptions(allowNone: true);
            var storage = StorageOption(allowNone: true);
            var (snapshots, volumes, networks, addresses) = CountOptions(allowNone: true);
            var disable = new Option<bool>("--disable") { Description = "Its keys stop working (its VMs keep running)." };
            var enable = new Option<bool>("--enable") { Description = "Its keys work again." };
            var poolShares = new Option<string>("--pool-shares") { Description = "Its CPU pool's weight against other tenants on each host (\"none\": its VMs' shares).", HelpName = "N" };
            var poolReservation = new Option<string>("--pool-reservation") { Description = "CPU guaranteed to its VMs together on each host, in millicores (\"none\": 0).", HelpName = "MILLICORES" };
            var forwardPorts = new Option<string>("--forward-ports") { Description = "Host ports its port forwards may use, e.g. 20000-20099 (\"none\": no forwards).", HelpName = "RANGE" };
            var poolLimit = new Option<string>("--pool-limit") { Description = "CPU cap for its VMs together on each host, in millicores (\"none\": no cap).", HelpName = "MILLICORES" };
            var set = new Command("set", "Change a tenant's quota (\"none\" lifts a limit) or CPU pool, or disable/enable it.")
            {
                id, vms, vcpus, memory, disable, enable, poolShares, poolReservation, poolLimit, storage, snapshots, volumes, networks, addresses,
                forwardPorts,
            };
            addTo(set);
            set.SetAction((parse, ct) =>
            {
                if (parse.GetValue(disable) && parse.GetValue(enable))
                {
                    throw new CliException("give --disable or --enable, not both");
                }

                bool? disabled = parse.GetValue(disable) ? true : parse.GetValue(enable) ? false : null;
                var change = new TenantQuotaChange(Limit(parse, vms), Limit(parse, vcpus), Limit(parse, memory), disabled,
                    Limit(parse, poolShares), Limit(parse, poolReservation), Limit(parse, poolLimit), Limit(parse, storage),
                    Limit(parse, snapshots), Limit(parse, volumes), Limit(parse, networks), Limit(parse, addresses), parse.GetValue(forwardPorts));
                if (change == new TenantQuotaChange(null, null, null, null))
                {
                    throw new CliException("nothing to set: give --max-vms, --max-vcpus, --max-memory, --max-storage, --max-snapshots, --max-volumes, " +
                        "--max-networks, --max-addresses, --forward-ports, --pool-shares, --pool-reservation, --pool-limit, --disable or --enable");
                }

                return actions.CallAsync(new ApiCallArgs(bind(parse), "PATCH", $"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}", null,
                    ApiRender.Tenant, change), ct);
            });
            tenant.Subcommands.Add(set);
        }

        var key = new Command("key", "A tenant's API keys.");
        {
            var (addTo, bind) = client();
            var id = new Argument<string>("TENANT") { Description = "The tenant the key is for." };
            var role = new Option<string>("--role") { Description = "member (default), read-only, or admin (system tenant only).", DefaultValueFactory = _ => "member" }
                .AcceptOnlyFromAmong("member", "read-only", "admin");
            var name = new Option<string>("--name") { Description = "A note to tell keys apart (not secret).", HelpName = "NAME" };
            var create = new Command("create", "Issue a key. It is printed once and kept nowhere; store it now.") { id, role, name };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST",
                $"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}/keys", new { role = parse.GetValue(role), name = parse.GetValue(name) },
                ApiRender.IssuedKey), ct));
            key.Subcommands.Add(create);
        }

        {
            var (addTo, bind) = client();
            var id = new Argument<string>("TENANT") { Description = "The key's tenant." };
            var keyId = new Argument<string>("KEY-ID") { Description = "The key's id (see tenant show)." };
            var revoke = new Command("revoke", "Revoke a key: it stops working at once.") { id, keyId };
            addTo(revoke);
            revoke.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "DELETE",
                $"v1/tenants/{Uri.EscapeDataString(parse.GetValue(id)!)}/keys/{Uri.EscapeDataString(parse.GetValue(keyId)!)}", null,
                ApiRender.Revoked), ct));
            key.Subcommands.Add(revoke);
        }

        tenant.Subcommands.Add(key);
        return tenant;
    }

    private static (Option<string> Vms, Option<string> Vcpus, Option<string> Memory) QuotaOptions(bool allowNone)
    {
        var none = allowNone ? " (\"none\": no limit)" : "";
        return (
            new Option<string>("--max-vms") { Description = "At most this many VMs" + none + ".", HelpName = "N" },
            new Option<string>("--max-vcpus") { Description = "At most this many vCPUs in all" + none + ".", HelpName = "N" },
            new Option<string>("--max-memory") { Description = "At most this much memory in MiB in all" + none + ".", HelpName = "MIB" });
    }

    /// <summary>--max-storage: GiB of VM disks and volumes together (issue 18).</summary>
    private static Option<string> StorageOption(bool allowNone) =>
        new("--max-storage") { Description = "At most this many GiB of VM disks and volumes in all" + (allowNone ? " (\"none\": no limit)" : "") + ".", HelpName = "GIB" };

    /// <summary>The quotas that count things: snapshots, volumes, networks, and addresses on the tenant's networks.</summary>
    private static (Option<string> Snapshots, Option<string> Volumes, Option<string> Networks, Option<string> Addresses) CountOptions(bool allowNone)
    {
        var none = allowNone ? " (\"none\": no limit)" : "";
        return (
            new Option<string>("--max-snapshots") { Description = "At most this many disk snapshots" + none + ".", HelpName = "N" },
            new Option<string>("--max-volumes") { Description = "At most this many volumes" + none + ".", HelpName = "N" },
            new Option<string>("--max-networks") { Description = "At most this many networks" + none + ".", HelpName = "N" },
            new Option<string>("--max-addresses") { Description = "At most this many addresses on its networks, one per NIC" + none + ".", HelpName = "N" });
    }

    private static long? Limit(System.CommandLine.ParseResult parse, Option<string> option)
    {
        if (parse.GetValue(option) is not { } text)
        {
            return null;
        }

        if (text == "none")
        {
            return TenantQuotaChange.Unlimited;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new CliException($"{option.Name}: '{text}' is not a whole number (or none)");
    }
}
