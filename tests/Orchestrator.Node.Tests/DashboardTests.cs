using System.Diagnostics;
using System.Net;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The dashboard in a real browser (Debian's chromium driven by Playwright, no browser downloaded) against a real node
/// booting a real guest: what a tenant does, what it sees live, and what it never sees of another tenant.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class DashboardTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Debian's package; scripts/prerequisites.sh --tests installs it.</summary>
    public const string Chromium = "/usr/bin/chromium";

    private static readonly float BootWait = (float)TimeSpan.FromSeconds(120).TotalMilliseconds;

    private NodeProcess _node = null!;
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private readonly List<string> _pageErrors = [];

    /// <summary>Screenshots land here, beside the test assembly, as the test's artifacts.</summary>
    public static string Screenshots => Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: run scripts/prerequisites.sh --tests (it installs Debian's chromium)");
        _node = await NodeProcess.StartAsync(output);
        _playwright = await Playwright.CreateAsync();
        // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
        Directory.CreateDirectory(Screenshots);
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
        await _node.DisposeAsync();
    }

    [Fact]
    public async Task A_tenant_creates_watches_and_stops_a_vm_and_reads_its_console_while_another_tenant_sees_none_of_it()
    {
        var keyA = await _node.TenantKeyAsync("alpha");
        var keyB = await _node.TenantKeyAsync("bravo");
        var page = await SignedInPageAsync(keyA);

        // The API's own validation message, shown as it said it.
        await page.FillAsync("#create-name", "web-1");
        await page.FillAsync("#create-memory", "0");
        await page.ClickAsync("#create");
        await Assertions.Expect(page.Locator("#create-error")).ToContainTextAsync("memoryMiB");
        Assert.Empty(await page.Locator("tr[data-vm='web-1']").AllAsync());

        // A marker on the window: still there at Ready means the page never reloaded to show it.
        await page.EvaluateAsync("() => { window.notReloaded = true; }");
        await page.FillAsync("#create-name", "web-1");
        await page.FillAsync("#create-memory", "128");
        // The demo guest boots in 128 MiB; the catalog may list a larger image (Debian) first.
        await page.SelectOptionAsync("#create-image", "demo");
        var clicked = Stopwatch.StartNew();
        await page.ClickAsync("#create");
        await Assertions.Expect(page.Locator("tr[data-vm='web-1'] [data-state]")).ToHaveTextAsync("Ready", new() { Timeout = BootWait });
        clicked.Stop();
        Assert.True(await page.EvaluateAsync<bool>("() => window.notReloaded === true"), "the page reloaded to show the VM ready");
        output.WriteLine($"dashboard: create click to Ready shown in {clicked.Elapsed.TotalSeconds:0.00} s");
        await File.WriteAllTextAsync(Path.Combine(Screenshots, "create-to-ready-seconds.txt"), $"{clicked.Elapsed.TotalSeconds:0.00}\n");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "vm-list.png"), FullPage = true });

        // The VM's page: its facts, its chart, its events, and its serial console with the guest's banner.
        await page.ClickAsync("tr[data-vm='web-1'] a");
        await Assertions.Expect(page.Locator("[data-fact='State']")).ToHaveTextAsync("Ready");
        await Assertions.Expect(page.Locator("#vm-events li").First).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#cpu-chart polyline.used")).ToHaveCountAsync(1);
        await page.ClickAsync("#console-open");
        await Assertions.Expect(page.Locator("#console")).ToContainTextAsync("ORCHESTRATOR-GUEST-READY", new() { Timeout = BootWait });
        // The chart draws from samples every 2 s: a few of them make a line.
        await page.WaitForFunctionAsync("() => document.querySelector('#cpu-chart polyline.used').getAttribute('points').split(' ').length >= 4",
            null, new() { Timeout = BootWait });
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "vm-page.png"), FullPage = true });

        // Stop from the list, seen live there too.
        await page.ClickAsync("a[href='#/']");
        await page.ClickAsync("tr[data-vm='web-1'] [data-action='stop']");
        await Assertions.Expect(page.Locator("tr[data-vm='web-1'] [data-state]")).ToHaveTextAsync("Stopped", new() { Timeout = BootWait });

        // Tenant B: the VM is not listed, and its address reads "not found", as a VM that never existed does.
        var other = await SignedInPageAsync(keyB);
        await Assertions.Expect(other.Locator("#vm-rows")).ToContainTextAsync("No VMs yet.");
        Assert.Empty(await other.Locator("tr[data-vm='web-1']").AllAsync());
        await other.GotoAsync($"{_node.Http.BaseAddress}#/vm/web-1");
        await Assertions.Expect(other.Locator("#not-found")).ToHaveTextAsync("not found");
        await other.GotoAsync($"{_node.Http.BaseAddress}#/vm/never-was");
        await Assertions.Expect(other.Locator("#not-found")).ToHaveTextAsync("not found");
        await other.GotoAsync($"{_node.Http.BaseAddress}#/admin");
        await Assertions.Expect(other.Locator("#not-found")).ToHaveTextAsync("not found");
        Assert.DoesNotContain("web-1", await other.ContentAsync());

        // The operator's view: the host with its allocation, both tenants, the cluster's events.
        var admin = await SignedInPageAsync(await File.ReadAllTextAsync(Path.Combine(_node.DataDir, "admin.key")));
        await admin.ClickAsync("#nav-admin");
        await Assertions.Expect(admin.Locator("#host-rows tr meter").First).ToBeVisibleAsync();
        await Assertions.Expect(admin.Locator("#tenant-rows tr[data-tenant='alpha']")).ToBeVisibleAsync();
        await Assertions.Expect(admin.Locator("#cluster-events li").First).ToBeVisibleAsync();
        await admin.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, "cluster.png"), FullPage = true });

        Assert.Empty(_pageErrors);
    }

    [Fact]
    public async Task The_page_is_confined_by_its_headers_and_the_key_never_reaches_a_url()
    {
        using var anonymous = _node.ClientWith(null);
        var response = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var policy = string.Join(" ", response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'self'", policy);
        Assert.Contains("frame-ancestors 'none'", policy);
        Assert.DoesNotContain("unsafe-inline", policy);
        Assert.Equal("nosniff", string.Join("", response.Headers.GetValues("X-Content-Type-Options")));
        // No inline script or style the policy would have to allow.
        var html = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("<script>", html);
        Assert.DoesNotContain("style=", html);

        var key = await _node.TenantKeyAsync("charlie");
        var requested = new List<string>();
        var page = await NewPageAsync();
        page.Request += (_, request) => requested.Add(request.Url);
        await SignInAsync(page, key);
        await page.ReloadAsync(); // the key survives a reload in session storage…
        await Assertions.Expect(page.Locator("#vm-rows")).ToBeVisibleAsync();
        Assert.DoesNotContain(requested, url => url.Contains(key, StringComparison.Ordinal)); // …and never travels in a URL
        await page.ClickAsync("#sign-out");
        await Assertions.Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('orchestrator.key')"));

        await page.FillAsync("#key", "orc_not-a-key");
        await page.ClickAsync("#sign-in-form button");
        await Assertions.Expect(page.Locator("#sign-in-error")).ToHaveTextAsync("That key is not accepted.");
        Assert.Empty(_pageErrors);
    }

    [Fact]
    public async Task A_console_ticket_opens_its_tenants_vm_once_while_its_key_works_and_another_tenants_ticket_finds_nothing()
    {
        var keyA = await _node.TenantKeyAsync("delta");
        var keyB = await _node.TenantKeyAsync("echo");
        using var a = _node.ClientWith(keyA);
        using var b = _node.ClientWith(keyB);
        Assert.Equal(HttpStatusCode.Created, (await a.PostAsync("v1/vms",
            new StringContent("""{"name":"solo","vcpus":1,"memoryMiB":128,"image":"demo"}""", System.Text.Encoding.UTF8, "application/json"))).StatusCode);
        await _node.Eventually(async () => (string?)System.Text.Json.Nodes.JsonNode.Parse(await a.GetStringAsync("v1/vms/solo"))!["state"] == "Ready" ? true : (bool?)null,
            TimeSpan.FromSeconds(120), "solo to be ready");

        var ticket = await TicketAsync(a, "solo");
        using (var socket = await ConsoleAsync(ticket, HttpStatusCode.SwitchingProtocols))
        {
            var buffer = new byte[4096];
            var first = await socket.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Contains("attached", System.Text.Encoding.UTF8.GetString(buffer, 0, first.Count));
        }

        (await ConsoleAsync(ticket, HttpStatusCode.Unauthorized)).Dispose(); // used once already
        (await ConsoleAsync("", HttpStatusCode.Unauthorized)).Dispose();
        (await ConsoleAsync(await TicketAsync(b, "solo"), HttpStatusCode.NotFound)).Dispose(); // B's ticket names B's (missing) VM

        // A ticket dies with its key: revoked after the ticket was issued, the ticket opens nothing.
        var keyA2 = await _node.TenantKeyAsync("delta");
        using var a2 = _node.ClientWith(keyA2);
        var orphan = await TicketAsync(a2, "solo");
        Assert.Equal(HttpStatusCode.NoContent, (await _node.Http.DeleteAsync($"v1/tenants/delta/keys/{keyA2.Trim()[4..20]}")).StatusCode);
        (await ConsoleAsync(orphan, HttpStatusCode.Unauthorized)).Dispose();
    }

    private static async Task<string> TicketAsync(HttpClient client, string vm)
    {
        var response = await client.PostAsync($"v1/vms/{vm}/console/ticket", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (string)System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!["ticket"]!;
    }

    /// <summary>Opens the ticket's console socket, asserting the upgrade's answer; the socket when it opened.</summary>
    private async Task<System.Net.WebSockets.ClientWebSocket> ConsoleAsync(string ticket, HttpStatusCode expected)
    {
        var socket = new System.Net.WebSockets.ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        var uri = new UriBuilder(_node.Http.BaseAddress!) { Scheme = "ws", Path = "/v1/console", Query = $"ticket={ticket}" }.Uri;
        try
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
        }
        catch (System.Net.WebSockets.WebSocketException)
        {
            // refused: the status says why
        }

        Assert.Equal(expected, socket.HttpStatusCode);
        return socket;
    }

    /// <summary>A fresh browser context (its own session storage) signed in with <paramref name="key"/>.</summary>
    private async Task<IPage> SignedInPageAsync(string key)
    {
        var page = await NewPageAsync();
        await SignInAsync(page, key.Trim());
        return page;
    }

    private async Task<IPage> NewPageAsync()
    {
        var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1200, Height = 900 } });
        var page = await context.NewPageAsync();
        // A script error or a policy violation (Chromium reports those as console errors) fails the test.
        page.PageError += (_, error) => _pageErrors.Add(error);
        page.Console += (_, message) =>
        {
            if (message.Type == "error" && !message.Text.Contains("status of 40", StringComparison.Ordinal))
            {
                _pageErrors.Add(message.Text);
            }
        };
        return page;
    }

    private async Task SignInAsync(IPage page, string key)
    {
        await page.GotoAsync(_node.Http.BaseAddress!.ToString());
        await page.FillAsync("#key", key);
        await page.ClickAsync("#sign-in-form button");
        await Assertions.Expect(page.Locator("#view h1")).ToBeVisibleAsync();
    }
}
