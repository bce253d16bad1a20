using System.Net;

namespace Orchestrator.Cli.Tests;

public class TenantCommandTests
{
    private const string Acme = """
        {"id":"acme","disabled":false,"quota":{"vms":10,"vcpus":20,"memoryMiB":null,"storageGiB":50,"snapshots":5,"volumes":null,"networks":2,"addresses":null},
         "usage":{"vms":2,"vcpus":3,"memoryMiB":512,"storageGiB":7,"snapshots":1,"volumes":4,"networks":2,"addresses":3},
         "keys":[{"keyId":"0123456789abcdef","tenant":"acme","role":"read-only","name":"ci","createdAt":"2026-11-24T01:00:00Z","revokedAt":null}]}
        """;

    [Fact]
    public async Task Tenant_create_sends_the_quota_and_shows_usage_against_it()
    {
        var http = new ScriptedHandler().On("POST", "/v1/tenants", HttpStatusCode.Created, Acme);
        var run = await CliRun.Of(http, null, "tenant", "create", "acme", "--max-vms", "10", "--max-vcpus", "20", "--max-networks", "2");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"id":"acme","quota":{"vms":10,"vcpus":20,"memoryMiB":null,"storageGiB":null,"snapshots":null,"volumes":null,"networks":2,"addresses":null}}""",
            http.Requests.Single().Body);
        Assert.Matches(@"VMs\s+2 of 10", run.Out.ToString());
        Assert.Matches(@"Memory\s+512 MiB \(no limit\)", run.Out.ToString());
        Assert.Matches(@"Networks\s+2 of 2", run.Out.ToString());
        Assert.Matches(@"Addresses\s+3 \(no limit\)", run.Out.ToString());
        Assert.Matches(@"0123456789abcdef\s+read-only\s+ci", run.Out.ToString());
    }

    [Fact]
    public async Task Tenant_set_changes_only_the_typed_limits_and_none_lifts_one()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/tenants/acme", HttpStatusCode.OK, Acme)
            .On("PATCH", "/v1/tenants/acme", HttpStatusCode.OK, Acme);
        var run = await CliRun.Of(http, null, "tenant", "set", "acme", "--max-vms", "none", "--max-memory", "4096", "--disable");

        Assert.Equal(0, run.ExitCode);
        // The quotas nobody typed stay as they were (the API replaces the quota whole: one left out would be lifted).
        Assert.Equal("""{"quota":{"vms":null,"vcpus":20,"memoryMiB":4096,"storageGiB":50,"snapshots":5,"volumes":null,"networks":2,"addresses":null},"disabled":true,"pool":null}""",
            http.Requests[1].Body);
    }

    [Fact]
    public async Task Tenant_set_max_storage_sets_the_storage_quota_and_none_lifts_it()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/tenants/acme", HttpStatusCode.OK, Acme)
            .On("PATCH", "/v1/tenants/acme", HttpStatusCode.OK, Acme)
            .On("GET", "/v1/tenants/acme", HttpStatusCode.OK, Acme)
            .On("PATCH", "/v1/tenants/acme", HttpStatusCode.OK, Acme);

        Assert.Equal(0, (await CliRun.Of(http, null, "tenant", "set", "acme", "--max-storage", "100")).ExitCode);
        Assert.Equal(0, (await CliRun.Of(http, null, "tenant", "set", "acme", "--max-storage", "none")).ExitCode);

        Assert.Contains("\"storageGiB\":100,", http.Requests[1].Body);
        Assert.Contains("\"storageGiB\":null,", http.Requests[3].Body);
    }

    [Fact]
    public async Task Tenant_set_pool_options_send_a_pool_merged_with_the_current_one()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/tenants/acme", HttpStatusCode.OK, Acme)
            .On("PATCH", "/v1/tenants/acme", HttpStatusCode.OK, Acme);
        var run = await CliRun.Of(http, null, "tenant", "set", "acme", "--pool-shares", "4096", "--pool-limit", "1500");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"quota":{"vms":10,"vcpus":20,"memoryMiB":null,"storageGiB":50,"snapshots":5,"volumes":null,"networks":2,"addresses":null},"disabled":null,"pool":{"cpuShares":4096,"cpuReservationMillicores":0,"cpuLimitMillicores":1500}}""",
            http.Requests[1].Body);
    }

    [Fact]
    public async Task An_issued_key_is_printed_once_with_a_warning_on_stderr()
    {
        var http = new ScriptedHandler().On("POST", "/v1/tenants/acme/keys", HttpStatusCode.Created,
            """{"keyId":"0123456789abcdef","tenant":"acme","role":"member","name":null,"key":"orc_0123456789abcdef_""" + new string('a', 64) + "\"}");
        var run = await CliRun.Of(http, null, "tenant", "key", "create", "acme");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"role":"member","name":null}""", http.Requests.Single().Body);
        Assert.Contains("orc_0123456789abcdef_" + new string('a', 64), run.Out.ToString());
        Assert.Contains("only time the key is shown", run.Error.ToString());
    }

    [Fact]
    public async Task Without_an_id_tenant_show_asks_for_the_callers_own_tenant()
    {
        var http = new ScriptedHandler().On("GET", "/v1/tenant", HttpStatusCode.OK, Acme);
        var run = await CliRun.Of(http, null, "tenant", "show");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("/v1/tenant", http.Requests.Single().Path);
    }

    [Fact]
    public async Task A_key_is_revoked_by_tenant_and_id()
    {
        var http = new ScriptedHandler().On("DELETE", "/v1/tenants/acme/keys/0123456789abcdef", HttpStatusCode.NoContent, "");
        var run = await CliRun.Of(http, null, "tenant", "key", "revoke", "acme", "0123456789abcdef");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("revoked\n", run.Out.ToString().Replace("\r\n", "\n"));
    }
}

public class AutomationCommandTests
{
    [Fact]
    public async Task Rule_create_sends_an_event_trigger_with_its_selector()
    {
        var http = new ScriptedHandler().On("POST", "/v1/rules", HttpStatusCode.Created,
            """{"id":"rule1","name":"crashy","on":{"event":"VmRestarting","count":3,"within":"10m"},"schedule":null,"action":"replace","selector":{"env":"dev"}}""");
        var run = await CliRun.Of(http, null, "rule", "create", "crashy", "--on", "VmRestarting", "--count", "3", "--action", "replace", "--selector", "env=dev");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"name":"crashy","on":{"event":"VmRestarting","count":3,"within":"10m"},"schedule":null,"action":"replace","selector":{"env":"dev"}}""",
            http.Requests.Single().Body);
        Assert.Matches(@"rule1\s+crashy", run.Out.ToString());
    }

    [Fact]
    public async Task A_webhook_secret_is_printed_once_and_a_bad_label_is_named()
    {
        var http = new ScriptedHandler().On("POST", "/v1/webhooks", HttpStatusCode.Created,
            """{"id":"wh1","url":"https://example.org/h","events":[],"secret":"abc123"}""");
        var run = await CliRun.Of(http, null, "webhook", "create", "--url", "https://example.org/h");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("abc123", run.Out.ToString());
        Assert.Contains("only time the secret is shown", run.Error.ToString());

        var bad = await CliRun.Of(new ScriptedHandler(), null, "vm", "label", "web", "nokey");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("'nokey' is not KEY=VALUE", bad.Error.ToString());
    }
}
