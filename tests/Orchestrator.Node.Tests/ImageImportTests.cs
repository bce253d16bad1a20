using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Image import through a real node and real QEMU (issue 18, part 5): a qcow2 imported with the CLI boots a VM with the demo
/// kernel on an overlay of it (its first sector's boot counter proves the disk is the image's); hostile images are refused
/// naming the field with nothing left in the store; another tenant neither sees nor boots a private image.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ImageImportTests(ITestOutputHelper output)
{
    private const long MaxBytes = 4L << 20;

    [Fact]
    public async Task An_imported_qcow2_boots_with_a_catalog_kernel_and_hostile_or_foreign_images_get_nowhere()
    {
        await using var node = await NodeProcess.StartAsync(output, extraConfig: $"orchestrator.images-import.max-bytes = {MaxBytes}\n");
        using var work = new TempFiles();
        var store = Path.Combine(node.DataDir, "images");

        // A 1 MiB disk whose first sector says the demo guest booted 41 times, as qcow2: a VM on it counts 42.
        var raw = work.File("counted.raw");
        var sector = new byte[1 << 20];
        Encoding.ASCII.GetBytes("ORCHESTRATOR-BOOTS 41\n").CopyTo(sector, 0);
        await File.WriteAllBytesAsync(raw, sector);
        var good = work.File("counted.qcow2");
        await QemuImgAsync("convert", "-f", "raw", "-O", "qcow2", raw, good);

        var import = await OrchestratorCommand.RunAsync(output, ["image", "import", "counted", "--file", good, "--kernel", "demo", "--data", node.DataDir],
            TimeSpan.FromMinutes(2), start =>
            {
                start.Environment.Remove("ORCHESTRATOR_URL");
                start.Environment.Remove("ORCHESTRATOR_API_KEY");
            });
        Assert.True(import.ExitCode == 0, import.Error);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(good)));
        Assert.Contains($"sha256 {sha256}", import.Out);
        var shown = JsonNode.Parse(await node.Http.GetStringAsync("v1/images/counted"))!;
        Assert.Equal("imported", (string?)shown["kind"]);
        Assert.Equal(1L << 20, (long)shown["virtualBytes"]!);
        var file = Path.Combine(store, $"{shown["id"]}.qcow2");
        Assert.True(File.Exists(file), $"{file} is in the store");

        // Hostile images: refused naming the field, nothing of them kept.
        var passwd = work.File("passwd.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", passwd, "1M");
        await AssertRefusedAsync(node.Http, "evil", "qcow2", passwd, "file", "backing file");
        await AssertRefusedAsync(node.Http, "liar", "raw", good, "format", "declared raw");
        var big = work.File("big.raw");
        await File.WriteAllBytesAsync(big, new byte[MaxBytes + 4096]);
        await AssertRefusedAsync(node.Http, "big", "raw", big, "file", "larger than");
        Assert.Equal([Path.GetFileName(file)], Directory.EnumerateFileSystemEntries(store).Select(f => Path.GetFileName(f)).ToList());

        // Another tenant: not listed, not found, not bootable, not deletable.
        using var bravo = node.ClientWith(await node.TenantKeyAsync("bravo"));
        Assert.DoesNotContain("counted", await bravo.GetStringAsync("v1/images"));
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.GetAsync("v1/images/counted")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.DeleteAsync("v1/images/counted")).StatusCode);
        var foreign = await bravo.PostAsJsonAsync("v1/vms", new { name = "thief", vcpus = 1, memoryMiB = 128, image = "counted" });
        Assert.Equal(HttpStatusCode.BadRequest, foreign.StatusCode);
        Assert.Contains("unknown image 'counted'", await foreign.Content.ReadAsStringAsync());
        var makePublic = await Upload(bravo, "mine&format=qcow2&kernel=demo&public=true", good);
        Assert.Equal(HttpStatusCode.Forbidden, makePublic.StatusCode);

        // Its owner boots it: the demo kernel on an overlay of the imported disk.
        var created = await node.Http.PostAsJsonAsync("v1/vms", new { name = "onimage", vcpus = 1, memoryMiB = 128, image = "counted" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var vm = await node.WaitForVmAsync("onimage", "Ready", v => Console(v, "ORCHESTRATOR-GUEST-READY onimage"));
        Assert.True(Console(vm, "ORCHESTRATOR-GUEST-READY onimage boot=42"), $"the VM's console: {vm["consoleTail"]}");

        // Kept while the VM's disk backs on it; deleted with its file once it does not.
        var kept = await node.Http.DeleteAsync("v1/images/counted");
        Assert.Equal(HttpStatusCode.Conflict, kept.StatusCode);
        Assert.Contains("VM 'onimage'", await kept.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Accepted, (await node.Http.DeleteAsync("v1/vms/onimage")).StatusCode);
        await node.Eventually(async () => (await node.Http.GetAsync("v1/vms/onimage")).StatusCode == HttpStatusCode.NotFound ? true : (bool?)null,
            TimeSpan.FromSeconds(90), "the VM to be deleted");
        Assert.Equal(HttpStatusCode.NoContent, (await node.Http.DeleteAsync("v1/images/counted")).StatusCode);
        Assert.False(File.Exists(file), $"{file} is gone");
    }

    private static async Task AssertRefusedAsync(HttpClient http, string name, string format, string path, string field, string why)
    {
        var answer = await Upload(http, $"{name}&format={format}&kernel=demo", path);
        var body = await answer.Content.ReadAsStringAsync();
        Assert.True(answer.StatusCode == HttpStatusCode.BadRequest, $"{name}: {(int)answer.StatusCode} {body}");
        var errors = JsonNode.Parse(body)!["errors"]!.AsObject();
        Assert.True(errors.ContainsKey(field), $"{name}: the refusal names '{field}': {body}");
        Assert.Contains(why, body);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"v1/images/{name}")).StatusCode);
    }

    /// <param name="query">the image's name, then the query string's rest.</param>
    private static async Task<HttpResponseMessage> Upload(HttpClient http, string query, string path)
    {
        await using var file = File.OpenRead(path);
        var content = new StreamContent(file);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return await http.PostAsync($"v1/images?name={query}", content);
    }

    private static bool Console(JsonNode vm, string text) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains(text, StringComparison.Ordinal) == true) == true;

    private static async Task QemuImgAsync(params string[] args)
    {
        var start = new ProcessStartInfo("qemu-img") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"qemu-img {string.Join(' ', args)}: {await errors}");
    }

    /// <summary>A directory of the test's own files, removed at the end.</summary>
    private sealed class TempFiles : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("orimg").FullName;

        public string File(string name) => Path.Combine(_dir, name);

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
